"""Does a follower's poll cost the new points only, whatever the run's length?

Usage:
    python benchmarks/follow.py                   # sqlite, trackbook's server, a stock server, PostgreSQL
    python benchmarks/follow.py --long 100000     # a shorter long run while developing
    python benchmarks/follow.py --no-postgres --no-servers

Two RUNNING runs in one store, a short one (``--short`` points, default 1,000) and a
long one (``--long``, default 1,000,000), each followed by its own ``store.follow()``.
Before each timed poll ``--new`` points (default 10) are logged to the run (untimed);
the poll must return exactly them. Polls of the two runs alternate, so that the load
of a shared machine falls on both alike. Printed: the median poll of each, their ratio
(target: about 1, flat in run length), and beside it what one full ``history()`` of
the same run costs. Stores are written by MLflow's own client; the sqlite one is kept
under .benchmarks_data/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stores import ROOT, median_time  # noqa: E402

METRIC = "train/loss"
T0 = 1_767_225_600_000


def build(uri: str, n_short: int, n_long: int) -> dict[str, str]:
    """Experiments ``follow-short`` and ``follow-long``, one RUNNING run each; their ids."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    out = {}
    for name, n in (("short", n_short), ("long", n_long)):
        exp = client.create_experiment(f"follow-{name}")
        run_id = client.create_run(exp, run_name=name).info.run_id
        started = time.perf_counter()
        for i in range(0, n, 1000):
            client.log_batch(run_id, metrics=[Metric(METRIC, s * 1e-3, T0 + s, s) for s in range(i, min(n, i + 1000))])
            if i and i % 200_000 == 0:
                print(f"  {name}: {i:,} points ({time.perf_counter() - started:.0f}s)", flush=True)
        out[name] = run_id
    return out


def sqlite_store(n_short: int, n_long: int) -> tuple[str, dict[str, str]]:
    import json

    folder = ROOT / f"follow-{n_short}-{n_long}"
    if not (folder / "ids.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mlflow.db").unlink(missing_ok=True)
        ids = build(f"sqlite:///{folder / 'mlflow.db'}", n_short, n_long)
        (folder / "ids.json").write_text(json.dumps(ids))
    return f"sqlite:///{folder / 'mlflow.db'}", json.loads((folder / "ids.json").read_text())


def measure(label: str, read_uri: str, write_uri: str, ids: dict[str, str], args: argparse.Namespace) -> None:
    """Polls of the short and the long run interleaved (a load that comes and goes on a
    shared machine hits both alike), then one history() of each."""
    import statistics

    import trackbook as tb
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    store = tb.connect(read_uri)
    writer = MlflowClient(write_uri)
    followers, steps = {}, {}
    for name, run_id in ids.items():
        followers[name] = store.follow(runs=[run_id], metrics=METRIC)
        steps[name] = int(followers[name].poll().points["step"].max()) + 1

    def log(name: str) -> None:
        s = steps[name]
        writer.log_batch(ids[name], metrics=[Metric(METRIC, 1.0, T0 + s, s) for s in range(s, s + args.new)])
        steps[name] += args.new

    times: dict[str, list[float]] = {name: [] for name in ids}
    for i in range(3 + args.repeat):  # the first 3 untimed: a fresh server's workers open the store
        for name in ids:
            log(name)
            start = time.perf_counter()
            update = followers[name].poll()
            elapsed = time.perf_counter() - start
            assert len(update.points) == args.new, (label, name, len(update.points))
            if i >= 3:
                times[name].append(elapsed)
    polls = {name: statistics.median(t) for name, t in times.items()}
    reads = {}
    for name, run_id in ids.items():
        reads[name], hist = median_time(lambda r=run_id: store.history(r, cache=False), args.history_repeat)
        assert len(hist) == steps[name], (len(hist), steps[name])
    short, long = polls["short"], polls["long"]
    print(f"{label}:")
    print(f"  poll ({args.new} new points), run of {args.short:>9,} points: {short * 1e3:8.2f} ms   "
          f"history(): {reads['short'] * 1e3:9.1f} ms")
    print(f"  poll ({args.new} new points), run of {args.long:>9,} points: {long * 1e3:8.2f} ms   "
          f"history(): {reads['long'] * 1e3:9.1f} ms")
    print(f"  poll long / short = {long / short:5.2f}   (target ~1: flat in run length); "
          f"history() long / poll long = {reads['long'] / long:,.0f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=1_000)
    parser.add_argument("--long", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--history-repeat", type=int, default=3)
    parser.add_argument("--no-servers", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    uri, ids = sqlite_store(args.short, args.long)
    print(f"medians of {args.repeat} polls, {args.history_repeat} history() reads")
    measure("MLflow sqlite store", uri, uri, ids, args)
    if not args.no_servers:
        from trackbook.servers import mlflow_server

        for app, label in [("trackbook", "mlflow server --app-name trackbook (sqlite)"),
                           (None, "stock mlflow server (sqlite)")]:
            with tempfile.TemporaryDirectory(prefix="trackbook-bench-follow-") as work:
                with mlflow_server(uri, Path(work), app=app) as url:
                    measure(label, url, url, ids, args)
    if not args.no_postgres:
        import glob
        import shutil

        if not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
            print("PostgreSQL: not installed (apt-get install postgresql); left out")
            return
        from trackbook.servers import postgres_server

        with tempfile.TemporaryDirectory(prefix="trackbook-bench-follow-pg-") as work:
            with postgres_server(work) as pg:
                pg_uri = pg.uri()
                pg_ids = build(pg_uri, args.short, args.long)
                measure("MLflow PostgreSQL store", pg_uri, pg_uri, pg_ids, args)


if __name__ == "__main__":
    main()
