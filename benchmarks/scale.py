"""Team scale: write throughput to one mlflow server on PostgreSQL, and bulk reads from it.

    python benchmarks/scale.py                  # writers 1, 4, 8; reads of 200 x 5 x 2,000
    python benchmarks/scale.py --skip-naive     # leave out the (minutes long) naive loop

Starts PostgreSQL and ``mlflow server --app-name trackbook`` (4 workers) on 127.0.0.1
in a temporary folder, as ``trackbook serve`` does.
Writers are separate processes, each logging --points points through trackbook's
tracker (batched, in the background) and waiting until the server took them all;
throughput = all points / (last writer done - first writer started). For reads, the
benchmark store's rows (built through MlflowClient under .benchmarks_data/) are copied
into the server's PostgreSQL database table by table; then ``history()`` over HTTP
(trackbook's Arrow endpoint), the same over MLflow's own bulk endpoint (what a stock
server gets), ``history()`` over direct PostgreSQL and the naive get_metric_history
loop read the same 2,000,000 points, side by side.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._stores import EXPERIMENT, metric_names, mlflow_store  # noqa: E402
from benchmarks.history import median_time, naive_loop  # noqa: E402

_WRITER = """
import json, sys, time
from trackbook.tracking import make_tracker
url, n_points, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tracker = make_tracker(url)
tracker.start_run("scale-writes", name=f"writer-{seed}")
names = [f"metric_{i}" for i in range(10)]
start = time.time()
for step in range(n_points // len(names)):
    tracker.log_metrics({n: step * 0.5 + i for i, n in enumerate(names)}, step)
assert tracker.end_run(timeout=600)
print(json.dumps({"start": start, "end": time.time()}))
"""


def throughput(url: str, writers: int, points: int, folder: Path) -> float:
    script = folder / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    procs = [subprocess.Popen([sys.executable, str(script), url, str(points), str(i)], stdout=subprocess.PIPE,
                              text=True) for i in range(writers)]
    spans = [json.loads(p.communicate(timeout=1200)[0].strip().splitlines()[-1]) for p in procs]
    return writers * points / (max(s["end"] for s in spans) - min(s["start"] for s in spans))


def copy_store(sqlite_db: Path, pg_uri: str) -> None:
    """Copy MLflow's rows of the sqlite benchmark store into the server's PostgreSQL schema."""
    import psycopg
    from mlflow.tracking import MlflowClient

    client = MlflowClient(pg_uri)
    if client.get_experiment_by_name(EXPERIMENT):
        return
    new_id = int(client.create_experiment(EXPERIMENT))
    src = sqlite3.connect(sqlite_db)
    with psycopg.connect(pg_uri) as dst, dst.cursor() as cur:
        for table in ("runs", "params", "tags", "metrics", "latest_metrics"):
            columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            at = columns.index("experiment_id") if "experiment_id" in columns else None
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    if at is not None:
                        row = (*row[:at], new_id, *row[at + 1:])
                    copy.write_row(row)
        dst.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000, help="points per writer")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    import trackbook as tb
    from trackbook.servers import mlflow_server, postgres_server
    from trackbook.store import _mlflow_rest

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        with postgres_server(work, databases=("mlflow",)) as pg, \
                mlflow_server(pg.uri("mlflow"), work / "server", workers=4) as url:
            print(f"PostgreSQL + mlflow server (4 workers) on 127.0.0.1; {args.points:,} points per writer")
            for writers in (1, 4, 8):
                rate = throughput(url, writers, args.points, work)
                print(f"  {writers} writer(s): {rate:>10,.0f} points/s accepted")

            db = mlflow_store(args.runs, 5, 2000)
            started = time.perf_counter()
            copy_store(db, pg.uri("mlflow"))
            print(f"\nCopied {args.runs} x 5 x 2,000 points into PostgreSQL in {time.perf_counter() - started:.0f}s")
            http, direct = tb.connect(url), tb.connect(pg.uri("mlflow"))
            run_ids = direct.runs(EXPERIMENT)["run_id"].tolist()
            metrics = metric_names(5)
            t_http, hist = median_time(lambda: http.history(run_ids, metrics, cache=False), args.repeat)
            t_json, _ = median_time(lambda: _mlflow_rest._read_json(http._host_creds, run_ids, metrics), args.repeat)
            t_sql, _ = median_time(lambda: direct.history(run_ids, metrics, cache=False), args.repeat)
            rows = [("trackbook history() over HTTP (Arrow endpoint)", t_http),
                    ("trackbook over HTTP, MLflow's get-history-bulk only", t_json),
                    ("trackbook history() over direct PostgreSQL", t_sql)]
            if not args.skip_naive:
                started = time.perf_counter()
                naive_loop(url, run_ids, metrics)
                rows.insert(0, ("naive get_metric_history loop over HTTP", time.perf_counter() - started))
            print(f"history() of {len(run_ids)} runs x {len(metrics)} metrics = {len(hist):,} points "
                  f"(median of {args.repeat}; the naive loop once):")
            slowest = rows[0][1]
            for name, seconds in rows:
                print(f"  {name:<52}{seconds:>8.2f} s  {slowest / seconds:>6.1f}x")


if __name__ == "__main__":
    main()
