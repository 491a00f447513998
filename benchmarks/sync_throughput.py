"""How fast does ``trackbook sync`` deliver journals, and what does journaling cost a write?

Usage:
    python benchmarks/sync_throughput.py [--runs 3] [--points 30000] [--keys 10]

1. Journaling: microseconds per ``Tracker.log_metrics`` call (``--keys`` metrics a call,
   the shape of an SB3 logger dump) into sqlite, with the journal (a line that reaches
   the operating system before the call returns) and with it off, side by side in one
   process; both deliver to the store meanwhile.
2. Sync: ``--runs`` offline runs of ``--points`` points each are journaled, then
   :func:`trackbook.sync` delivers them to a sqlite store, to a real ``mlflow server``
   on 127.0.0.1 (sqlite behind it) and to an Aim repository. Figure: points per second
   of wall-clock time, the store's own write time included.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _journal(uri: str, runs: int, points: int, keys: int) -> None:
    from trackbook.tracking import make_tracker

    for r in range(runs):
        tracker = make_tracker(uri, offline=True)
        tracker.start_run("sync-bench", name=f"run-{r}")
        for step in range(points // keys):
            tracker.log_metrics({f"m{k}": step * 0.001 + k for k in range(keys)}, step)
        tracker.end_run()


def _per_call_us(uri: str, calls: int, keys: int, **kwargs) -> float:
    from trackbook.tracking import make_tracker

    tracker = make_tracker(uri, **kwargs)
    tracker.start_run("journal-cost")
    metrics = {f"m{k}": 0.5 for k in range(keys)}
    start = time.perf_counter()
    for step in range(calls):
        tracker.log_metrics(metrics, step)
    seconds = time.perf_counter() - start
    tracker.end_run()
    return 1e6 * seconds / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--points", type=int, default=30_000)
    parser.add_argument("--keys", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trackbook-bench-sync-"))
    os.environ["TRACKBOOK_DATA_DIR"] = str(work / "data")

    import trackbook as tb
    from trackbook.servers import mlflow_server

    calls = 3000
    journaled = _per_call_us(f"sqlite:///{work / 'cost.db'}", calls, args.keys)
    queued = _per_call_us(f"sqlite:///{work / 'cost2.db'}", calls, args.keys, journal=False)
    print(f"log_metrics of {args.keys} metrics, {calls:,} calls: with the journal {journaled:.1f} us/call, "
          f"without {queued:.1f} us/call (journaling adds {journaled - queued:.1f} us/call)")

    total = args.runs * args.points
    print(f"sync: {args.runs} runs x {args.points:,} points ({args.keys} metrics a line)")
    with mlflow_server(f"sqlite:///{work / 'served.db'}", work / "server") as url:
        for label, uri in (("sqlite", f"sqlite:///{work / 'sync.db'}"), ("mlflow server", url),
                           ("Aim", f"aim://{work / 'aim'}")):
            if label == "sqlite":
                from mlflow.tracking import MlflowClient

                MlflowClient(uri).search_experiments()  # create the tables outside the timing
            _journal(uri, args.runs, args.points, args.keys)
            start = time.perf_counter()
            results = tb.sync(uri)
            seconds = time.perf_counter() - start
            delivered = sum(r.points for r in results)
            assert delivered == total and all(r.outcome == "delivered" for r in results), results
            print(f"  -> {label:<14} {delivered:,} points in {seconds:6.1f}s: {delivered / seconds:8,.0f} points/s")


if __name__ == "__main__":
    main()
