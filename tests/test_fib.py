import pytest

from fibrpc_helpers import check_n, fib, fib_recursive


def test_fast_fib_agrees_with_the_tutorials_definition():
    assert [fib(n) for n in range(25)] == [fib_recursive(n) for n in range(25)]


def test_known_values():
    assert fib(0) == 0
    assert fib(1) == 1
    assert fib(10) == 55
    assert fib(100) == 354224848179261915075
    assert len(str(fib(10_000))) == 2090


def test_fib_satisfies_the_recurrence_for_large_n():
    assert all(fib(n) + fib(n + 1) == fib(n + 2) for n in range(990, 1010))


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None, True])
def test_fib_refuses_what_is_not_a_non_negative_int(bad):
    with pytest.raises(ValueError):
        fib(bad)


def test_check_n_enforces_the_maximum_and_says_it():
    assert check_n(100, max_n=100) == 100
    with pytest.raises(ValueError, match="at most 100"):
        check_n(101, max_n=100)
