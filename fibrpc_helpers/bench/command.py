"""``python -m fibrpc_helpers bench [quick|full|ladder]``: measure, save CSVs and plots.

* ``quick``: a small grid, the open loop and the design comparison (CI, under 20 s);
* ``full``: the classroom grid, C up to 64 and W up to 8 (under 120 s on 2 cores);
* ``ladder``: the tuning ladder, one lever per rung, as multiples of ``aio_pika.patterns.RPC``.

Everything lands under ``results/<preset>-<time>/`` (git-ignored): calls.csv (every call),
summary.csv (one row per point) and the PNG plots."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from ..urls import amqp_url, mask_url

# Measuring and plotting are imported in the functions: every `worker` process builds this parser.
PRESET_NAMES = ("quick", "full")


def run_preset(name: str, *, url: str | None = None, prefetch: int | None = None,
               loadgens: int | None = None, progress: bool = True) -> Path:
    """Run a preset's grid, open loop and designs; write CSVs and PNGs; return the folder."""
    from .grid import Bench

    given = {"prefetch": prefetch, "loadgens": loadgens}
    overrides = {key: value for key, value in given.items() if value is not None}
    started = time.monotonic()
    with Bench(name, url=url, progress=progress, **overrides) as bench:
        from .plots import save_all  # matplotlib loads while the load generators start

        p = bench.preset
        print(f"bench {name} against {mask_url(bench.url)}: prefetch {p.prefetch}, "
              f"{p.loadgens} load-generator processes", flush=True)
        bench.closed_grid(open_loop=True)  # the open loop reuses the closed grid's workers
        bench.designs()
        folder = bench.save()
        rows = bench.rows()
        first = next(x for x in bench.points if x.kind == "closed" and x.clients == max(p.clients))
        opened = [x for x in bench.points if x.kind == "open"]
        # Each work's nominal service time S for the W / S ceiling: its sleep, when it has one.
        service_ms = {work.name: work.sleep_ms for work in [*p.works, p.open_work] if work.sleep_ms}
        paths = save_all(rows, folder, service_ms=service_ms,
                         open_service_ms=opened[0].service_ms if opened else None,
                         cdfs={f"{first.work.name} W={first.workers} C={first.clients}":
                               first.latencies()})
    print(f"{len(rows)} points, {sum(r['calls'] for r in rows)} measured calls in "
          f"{time.monotonic() - started:.1f} s; wrote calls.csv, summary.csv and "
          f"{len(paths)} plots to {folder}/")
    return folder


def run_ladder(*, url: str | None = None, rounds: int = 4, progress: bool = True) -> Path:
    """Run the tuning ladder; print its table, what each rung gives up, and the verdict."""
    from .grid import RESULTS
    from .ladder import ladder, machine
    from .plots import ladder_bars
    from .reports import write_csv

    started = time.monotonic()
    result = ladder(url, rounds=rounds, progress=progress)
    folder = RESULTS / f"ladder-{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "summary.csv", result.rows)
    ladder_bars(result).savefig(folder / "ladder.png", dpi=100)
    print(f"\nladder ({rounds} interleaved rounds, medians; classic request queues; "
          f"{machine()}):", result.table(), result.gives_up(), result.narrative(),
          f"in {time.monotonic() - started:.1f} s; rows and ladder.png in {folder}/",
          result.verdict(), sep="\n")
    return folder


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``bench`` subcommand of ``python -m fibrpc_helpers``."""
    b = commands.add_parser("bench", help="measure latency over clients x workers; plots",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("preset", nargs="?", default="quick", choices=[*PRESET_NAMES, "ladder"])
    b.add_argument("--url", help="AMQP URL (default: $AMQP_URL, else local guest)")
    b.add_argument("--prefetch", type=int, help="unacked requests per worker (default: preset's)")
    b.add_argument("--loadgens", type=int, help="load-generator processes (default 2)")
    b.add_argument("--rounds", type=int, help="ladder: rounds to take medians over (default 4)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    amqp_url(args.url)  # fail early on a malformed URL
    progress = not args.no_progress
    if args.preset == "ladder":
        run_ladder(url=args.url, rounds=args.rounds or 4, progress=progress)
    else:
        run_preset(args.preset, url=args.url, prefetch=args.prefetch, loadgens=args.loadgens,
                   progress=progress)
    return 0
