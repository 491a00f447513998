"""How fast and how lean is ``Store.history()`` for many runs, against the alternatives?

Usage:
    python benchmarks/history.py                 # MLflow sqlite store
    python benchmarks/history.py --http          # the same store behind a real mlflow server
    python benchmarks/history.py --aim           # an Aim repository of the same shape
    python benchmarks/history.py --runs 50       # a smaller store (default 200 x 5 x 2,000)
    python benchmarks/history.py --naive-repeat 0  # leave out the (slow) naive loop

The floor is ``adbc-driver-sqlite`` reading every point into Arrow; the sqlite run also
measures 2,000 runs x 3 metrics x 10 points (warm against cold) and ``runs()`` against
``mlflow.search_runs``.

The store is built once under .benchmarks_data/ (minutes for the default size). Every
figure is a median of --repeat runs (default 3), measured side by side in one process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from benchmarks._stores import EXPERIMENT, aim_repo, median_time, metric_names, mlflow_store  # noqa: E402



def naive_loop(uri: str, run_ids: list[str], metrics: list[str]) -> int:
    """What users write today: one get_metric_history call per run and metric."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return sum(len(client.get_metric_history(r, m)) for r in run_ids for m in metrics)


# VmHWM (not ru_maxrss, which after fork+exec still counts the parent's peak) is this
# process's own high-water mark of resident memory, reset just before the call
# (/proc/self/clear_refs). One run's history() first, so the modules a first read
# imports (the ADBC driver) are in the baseline, not counted as the read's memory.
# tracemalloc sees NumPy's and Python's allocations, not Arrow's: pyarrow's own pool
# reports those (its high-water mark).
_PEAK_SCRIPT = """
import json, sys, tempfile, tracemalloc
import pyarrow as pa
from trackbook.store.mlflow import MLflowStore
def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
store = MLflowStore(sys.argv[1], cache_dir=tempfile.mkdtemp(prefix="trackbook-bench-peak-"))
cache = sys.argv[2] == "cache"
runs = store.runs()
store.history(runs["run_id"].iloc[:1], cache=False)
tracemalloc.start()
before = status_mb("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
hist = store.history(runs, cache=cache)
peak = status_mb("VmHWM:")
traced = tracemalloc.get_traced_memory()[1] / 2**20
print(json.dumps({"points": len(hist), "before_mb": before, "peak_mb": peak, "traced_mb": traced,
                  "arrow_mb": pa.default_memory_pool().max_memory() / 2**20,
                  "frame_mb": hist.memory_usage(deep=True).sum() / 2**20}))
"""


def peak_memory(uri: str, cache: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, uri, "cache" if cache else "off"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows: list[tuple[str, float]], points: int) -> None:
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.3f} s  {points / seconds / 1e6:6.2f} M points/s")


def adbc_floor(db: Path) -> int:
    """Every point read by ADBC into Arrow: what a columnar driver gets from the file."""
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(f"file:{db}?mode=ro") as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM metrics")
        return cur.fetch_arrow_table().num_rows


def engine_alone(db: Path) -> int:
    """sqlite's engine over every point, nothing transferred: below any reader."""
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT COUNT(*), SUM(step), SUM(value), SUM(timestamp) FROM metrics").fetchone()[0]


def cold_and_warm(uri: str, metrics: list[str] | None, repeat: int) -> tuple[float, float, float, pd.DataFrame]:
    """history() cold (a new store object each time, empty cache), warm, and with cache=False."""
    from trackbook.store.mlflow import MLflowStore

    cache = Path(tempfile.mkdtemp(prefix="trackbook-bench-cache-"))
    stores: list[MLflowStore] = []

    def fresh() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        stores.append(MLflowStore(uri, cache_dir=cache))

    fresh()
    runs = stores[0].runs(EXPERIMENT)
    t_cold, hist = median_time(lambda: stores[-1].history(runs, metrics), repeat, before=fresh)
    t_warm, warm = median_time(lambda: stores[-1].history(runs, metrics), repeat)
    pd.testing.assert_frame_equal(hist, warm)
    t_off, off = median_time(lambda: stores[-1].history(runs, metrics, cache=False), repeat)
    pd.testing.assert_frame_equal(hist, off)
    shutil.rmtree(cache, ignore_errors=True)
    return t_cold, t_warm, t_off, hist


def bench_sqlite(args: argparse.Namespace) -> None:
    import mlflow

    from trackbook.store.mlflow import MLflowStore

    db = mlflow_store(args.runs, args.metrics, args.steps)
    uri = f"sqlite:///{db}"
    store = MLflowStore(uri, cache_dir=tempfile.mkdtemp(prefix="trackbook-bench-cache-"))
    runs = store.runs(EXPERIMENT)
    run_ids, metrics = list(runs["run_id"]), metric_names(args.metrics)
    points = args.runs * args.metrics * args.steps
    print(f"MLflow sqlite store: {len(run_ids)} runs x {len(metrics)} metrics x {args.steps} steps = {points:,} points")

    t_engine, n = median_time(lambda: engine_alone(db), args.repeat)
    assert n == points, n
    t_adbc, n = median_time(lambda: adbc_floor(db), args.repeat)
    assert n == points, n

    def pandas_sql() -> pd.DataFrame:
        import sqlite3

        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return pd.read_sql_query("SELECT * FROM metrics", con)

    t_pandas, raw = median_time(pandas_sql, args.repeat)
    assert len(raw) == points, len(raw)
    del raw
    t_cold, t_warm, t_off, hist = cold_and_warm(uri, metrics, args.repeat)
    assert len(hist) == points, len(hist)
    t_naive, n = median_time(lambda: naive_loop(uri, run_ids, metrics), args.naive_repeat) if args.naive_repeat else (
        float("nan"), points)
    assert n == points, n

    print(f"medians of {args.repeat} (naive loop: of {args.naive_repeat}):")
    report(
        [
            ("naive MlflowClient.get_metric_history loop", t_naive),
            ("pandas.read_sql_query('SELECT * FROM metrics')", t_pandas),
            ("sqlite's engine alone (COUNT/SUM, nothing transferred)", t_engine),
            ("floor: adbc-driver-sqlite, SELECT * into Arrow", t_adbc),
            ("trackbook history(), cold (new store, empty cache)", t_cold),
            ("trackbook history(), warm (Parquet cache)", t_warm),
            ("trackbook history(cache=False)", t_off),
        ],
        points,
    )
    print(f"  cold / ADBC         = {t_cold / t_adbc:5.2f}   (target <= 1.3)")
    print(f"  warm / ADBC         = {t_warm / t_adbc:5.2f}   (target <= 0.5)")
    print(f"  pandas / cold       = {t_pandas / t_cold:5.2f}x")
    print(f"  naive / cold        = {t_naive / t_cold:5.1f}x")
    for cache in (False, True):
        mem = peak_memory(uri, cache)
        above = mem["peak_mb"] - mem["before_mb"]
        print(
            f"  memory, cold history(cache={cache}) of {mem['points']:,} points in a fresh process: peak RSS "
            f"{above:.0f} MiB above the {mem['before_mb']:.0f} MiB before the call (tracemalloc peak "
            f"{mem['traced_mb']:.0f} MiB, Arrow pool peak {mem['arrow_mb']:.0f} MiB); the frame itself "
            f"{mem['frame_mb']:.0f} MiB: {above / mem['frame_mb']:.2f}x (target <= 2)"
        )

    # many small runs: one batch file for them all, so warm beats cold
    small = mlflow_store(2000, 3, 10)
    s_cold, s_warm, s_off, s_hist = cold_and_warm(f"sqlite:///{small}", None, args.repeat)
    assert len(s_hist) == 2000 * 3 * 10, len(s_hist)
    print("2,000 runs x 3 metrics x 10 points:")
    report([("history(), cold", s_cold), ("history(), warm", s_warm), ("history(cache=False)", s_off)], len(s_hist))
    print(f"  warm / cache=False  = {s_warm / s_off:5.2f}   (target < 1)")

    # runs() against MLflow's own search_runs on the same store
    mlflow.set_tracking_uri(f"sqlite:///{small}")
    small_store = MLflowStore(f"sqlite:///{small}")
    exp = small_store.runs(EXPERIMENT)["experiment_id"].iloc[0]
    t_runs, frame = median_time(lambda: small_store.runs(EXPERIMENT), args.repeat)
    t_search, ref = median_time(lambda: mlflow.search_runs([exp], max_results=100_000), args.repeat)
    assert len(frame) == len(ref) == 2000, (len(frame), len(ref))
    print(f"runs() of 2,000 runs: {t_runs:.3f} s; mlflow.search_runs {t_search:.3f} s; ratio {t_runs / t_search:.2f} "
          f"(target <= 1; 10,000 runs: benchmarks/growth.py)")


def bench_http(args: argparse.Namespace) -> None:
    from trackbook.servers import mlflow_server
    from trackbook.store.mlflow import MLflowStore

    db = mlflow_store(args.runs, args.metrics, args.steps)
    points = args.runs * args.metrics * args.steps
    print(f"mlflow servers ({args.workers} workers each) on 127.0.0.1 over the same sqlite store: {points:,} points")
    ratios = []
    for app, label in [(None, "stock mlflow server"), ("trackbook", "mlflow server --app-name trackbook")]:
        with tempfile.TemporaryDirectory(prefix="trackbook-bench-http-") as work:
            with mlflow_server(f"sqlite:///{db}", Path(work), workers=args.workers, app=app) as url:
                store = MLflowStore(url, cache_dir=Path(work) / "cache")
                runs = store.runs(EXPERIMENT)
                run_ids, metrics = list(runs["run_id"]), metric_names(args.metrics)
                t_bulk, hist = median_time(lambda: store.history(runs, metrics, cache=False), args.repeat)
                assert len(hist) == points, len(hist)
                t_naive, n = median_time(lambda: naive_loop(url, run_ids, metrics), args.naive_repeat)
                assert n == points, n
        print(f"{label}:")
        report([("naive get_metric_history loop over REST", t_naive), ("trackbook history() over REST", t_bulk)], points)
        ratios.append((label, t_naive / t_bulk))
    for label, ratio in ratios:
        print(f"  naive / trackbook, {label:<36} = {ratio:5.1f}x  (target >= 5)")


def bench_aim(args: argparse.Namespace) -> None:
    import aim

    from trackbook.store.aim import AimStore

    repo_path = aim_repo(args.runs, args.metrics, args.steps)
    points = args.runs * args.metrics * args.steps
    cache = Path(tempfile.mkdtemp(prefix="trackbook-bench-cache-"))
    store = AimStore(f"aim://{repo_path}", cache_dir=cache)
    runs = store.runs(EXPERIMENT)
    metrics = metric_names(args.metrics)
    print(f"Aim repository: {points:,} points")

    def aim_query() -> int:
        repo = aim.Repo(str(repo_path))
        total = 0
        names = ", ".join(repr(m) for m in metrics)
        for metric in repo.query_metrics(f"metric.name in [{names}]", report_mode=0):
            steps, (values,) = metric.data.view(["val"]).numpy()
            total += len(values)
        return total

    t_aim, n = median_time(aim_query, args.repeat)
    assert n == points, n
    t_cold, hist = median_time(lambda: store.history(runs, metrics), args.repeat, before=store.cache.clear)
    assert len(hist) == points, len(hist)
    t_warm, _ = median_time(lambda: store.history(runs, metrics), args.repeat)
    shutil.rmtree(cache, ignore_errors=True)
    report(
        [
            ("Aim's own query_metrics(...) to numpy", t_aim),
            ("trackbook history(), cold", t_cold),
            ("trackbook history(), warm (Parquet cache)", t_warm),
        ],
        points,
    )
    print(f"  cold / aim          = {t_cold / t_aim:5.2f}   (target <= 1; history() also reads the timestamps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--http", action="store_true", help="benchmark the REST path against an mlflow server")
    parser.add_argument("--aim", action="store_true", help="benchmark an Aim repository")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="mlflow server workers for --http (its default)")
    parser.add_argument("--naive-repeat", type=int, default=3, help="repeats of the (slow) naive loop")
    args = parser.parse_args()
    if args.http:
        bench_http(args)
    elif args.aim:
        bench_aim(args)
    else:
        bench_sqlite(args)


if __name__ == "__main__":
    main()
