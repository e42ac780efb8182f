"""Fibonacci numbers: the fast exact version workers serve by default (a benchmark measures
the messaging), and the tutorial's slow CPU-bound one (which makes more workers worthwhile)."""

from __future__ import annotations

DEFAULT_MAX_N = 10_000
"""Largest n a worker accepts by default: fib(10 000), 2 090 digits, takes well under 1 ms."""
RECURSIVE_MAX_N = 35
"""The same for fib_recursive: 35 takes seconds, 50 would take hours and hold the worker."""


def fib(n: int) -> int:
    """Return the n-th Fibonacci number exactly (fib(0) = 0, fib(1) = 1), in O(log n) steps,
    by fast doubling: fib(2k) = fib(k) (2 fib(k+1) - fib(k)), fib(2k+1) = fib(k)^2 + fib(k+1)^2."""
    check_n(n, max_n=None)
    a, b = 0, 1  # fib(k), fib(k+1) for k = the bits of n read so far
    for bit in bin(n)[2:]:
        a, b = a * (2 * b - a), a * a + b * b
        if bit == "1":
            a, b = b, a + b
    return a


def fib_recursive(n: int) -> int:
    """The tutorial's definition, exponential time: fib_recursive(30) takes about a second."""
    check_n(n, max_n=None)
    if n < 2:
        return n
    return fib_recursive(n - 1) + fib_recursive(n - 2)


def check_n(n: int, max_n: int | None = DEFAULT_MAX_N) -> int:
    """Return n if it is an int in ``0..max_n`` (None: no upper bound), else ValueError."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be an integer, got {type(n).__name__} {n!r}")
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    if max_n is not None and n > max_n:
        raise ValueError(f"n must be at most {max_n} (the worker's limit), got {n}")
    return n
