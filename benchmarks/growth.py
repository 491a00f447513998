"""How each read's cost grows: from 10 runs to 10,000 and from 10,000 points to 20,000,000.

Usage:
    python benchmarks/growth.py                        # sqlite and PostgreSQL, up to 1,000,000 points
    python benchmarks/growth.py --full                 # the points axis up to 20,000,000
    python benchmarks/growth.py --no-postgres --out growth.html
    python benchmarks/growth.py --full --max-runs 0 --min-points 10000000   # only 10M -> 20M points

For each store size, side by side in one process: ``runs()`` against
``mlflow.search_runs``, and ``history()`` cold (a fresh store object, an empty cache),
warm (the same again, the fastest of five reads at every size) and without the cache,
against the floor, every point read by ADBC into Arrow (``SELECT * FROM metrics``). It
prints a table, the cost growth per 10x of runs or points (1.0 is linear), and writes a
plotly figure as HTML.

The stores are MLflow databases whose schema MLflow's own client created; their rows
are bulk-loaded into it through ADBC (10,000 runs through MLflow's client would take
half an hour), and one run of each store is checked against MlflowClient's answer.
PostgreSQL runs through :func:`trackbook.servers.postgres_server`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks._stores import ROOT, metric_names  # noqa: E402

T0 = 1_767_225_600_000


def _adbc(uri: str, **kwargs):
    if uri.startswith("sqlite:///"):
        import adbc_driver_sqlite.dbapi as adbc

        return adbc.connect(uri[len("sqlite:///") :], **kwargs)
    import adbc_driver_postgresql.dbapi as adbc

    return adbc.connect(uri, **kwargs)


def build(uri: str, n_runs: int, n_metrics: int, n_steps: int) -> str:
    """An MLflow store with ``n_runs`` FINISHED runs x ``n_metrics`` x ``n_steps`` points."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment("growth")
    rng = np.random.default_rng(0)
    names = metric_names(n_metrics)
    ids = [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex for i in range(n_runs)]
    start = T0 + np.arange(n_runs, dtype=np.int64) * 1000
    tables = {
        "runs": pa.table({
            "run_uuid": ids, "name": [f"run-{i:05d}" for i in range(n_runs)], "source_type": ["LOCAL"] * n_runs,
            "source_name": [""] * n_runs, "entry_point_name": [""] * n_runs, "user_id": ["bench"] * n_runs,
            "status": ["FINISHED"] * n_runs, "start_time": start, "end_time": start + 500,
            "source_version": [""] * n_runs, "lifecycle_stage": ["active"] * n_runs,
            "artifact_uri": [f"/tmp/growth/{i}" for i in ids], "experiment_id": pa.array([int(exp)] * n_runs, pa.int32()),
        }),
        "params": pa.table({
            "key": ["learning_rate", "seed"] * n_runs,
            "value": [v for i in range(n_runs) for v in (str(10 ** rng.uniform(-5, -2)), str(i))],
            "run_uuid": [r for r in ids for _ in range(2)],
        }),
        "tags": pa.table({"key": ["mlflow.runName"] * n_runs, "value": [f"run-{i:05d}" for i in range(n_runs)],
                          "run_uuid": ids}),
    }
    steps = np.arange(n_steps, dtype=np.int64)
    values = rng.normal(0.0, 1.0, n_steps)
    latest = {"key": [], "value": [], "timestamp": [], "step": [], "is_nan": [], "run_uuid": []}
    for r in ids:
        for m in names:
            latest["key"].append(m)
            latest["value"].append(float(values[-1]))
            latest["timestamp"].append(T0 + int(steps[-1]) * 10)
            latest["step"].append(int(steps[-1]))
            latest["is_nan"].append(False)
            latest["run_uuid"].append(r)
    tables["latest_metrics"] = pa.table(latest)
    with contextlib.closing(_adbc(uri)) as conn:
        with conn.cursor() as cur:
            for name, table in tables.items():
                cur.adbc_ingest(name, table, mode="append")
            per_chunk = max(1, 2_000_000 // (n_metrics * n_steps))
            for i in range(0, n_runs, per_chunk):
                chunk = ids[i : i + per_chunk]
                n = len(chunk) * n_metrics * n_steps
                cur.adbc_ingest("metrics", pa.table({
                    "key": pa.DictionaryArray.from_arrays(
                        np.tile(np.repeat(np.arange(n_metrics, dtype=np.int32), n_steps), len(chunk)), names
                    ).cast(pa.string()),
                    "value": np.tile(values, len(chunk) * n_metrics),
                    "timestamp": np.tile(T0 + steps * 10, len(chunk) * n_metrics),
                    "run_uuid": pa.DictionaryArray.from_arrays(
                        np.repeat(np.arange(len(chunk), dtype=np.int32), n_metrics * n_steps), chunk
                    ).cast(pa.string()),
                    "step": np.tile(steps, len(chunk) * n_metrics),
                    "is_nan": np.zeros(n, dtype=bool),
                }), mode="append")
        conn.commit()
    # As autovacuum would soon: without statistics PostgreSQL sorts on disk, and VACUUM
    # sets the rows' hint bits, which the first read would otherwise write (42k pages
    # dirtied by the first read of 10M points) and be charged for.
    postgres = not uri.startswith("sqlite:///")
    with contextlib.closing(_adbc(uri, autocommit=True) if postgres else _adbc(uri)) as conn, conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE)" if postgres else "ANALYZE")
        if not postgres:
            conn.commit()
    # MLflow's own client reads the loaded rows back as it wrote them.
    run = client.get_run(ids[-1])
    assert run.info.status == "FINISHED" and run.data.params["seed"] == str(n_runs - 1), run
    history = client.get_metric_history(ids[-1], names[-1])
    assert [m.step for m in history] == list(range(n_steps)), len(history)
    return exp


def once(fn: Callable[[], object], before: Callable[[], object] | None = None, repeat: int = 1,
         stat: Callable[[list[float]], float] = np.median) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(stat(times))


def measure(uri: str, exp: str, points: int, repeat: int) -> dict[str, float]:
    import mlflow

    from trackbook.store.mlflow import MLflowStore

    cache = Path(tempfile.mkdtemp(prefix="trackbook-growth-cache-"))
    mlflow.set_tracking_uri(uri)
    out: dict[str, float] = {}
    store = MLflowStore(uri, cache_dir=cache)
    out["runs()"] = once(lambda: store.runs("growth"), repeat=repeat)
    out["mlflow.search_runs"] = once(lambda: mlflow.search_runs([exp], max_results=100_000), repeat=repeat)
    runs = store.runs("growth")

    def floor() -> None:
        with contextlib.closing(_adbc(uri)) as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM metrics")
            assert cur.fetch_arrow_table().num_rows == points

    out["floor: ADBC into Arrow"] = once(floor, repeat=repeat)
    fresh: list = []

    def cold() -> None:
        hist = fresh[-1].history(runs)
        assert len(hist) == points, len(hist)

    def new_store() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        fresh.append(MLflowStore(uri, cache_dir=cache))

    out["history() cold"] = once(cold, before=new_store, repeat=repeat)
    # Warm reads cost a second or two at most, so always the fastest of five: the same read
    # of 20,000,000 points took 0.47-2.07 s, the spread in filling the frame's columns (one
    # multiply of the 20,000,000 timestamps: 0.04 s or 0.48 s), most likely the kernel's.
    out["history() warm"] = once(cold, repeat=5, stat=min)
    out["history(cache=False)"] = once(lambda: fresh[-1].history(runs, cache=False), repeat=repeat)
    shutil.rmtree(cache, ignore_errors=True)
    return out


def growth_exponents(frame: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per read, the largest local slope of log(cost) against log(size) (1.0 = linear)."""
    rows = []
    for (backend, read), part in frame[frame["axis"] == axis].groupby(["backend", "read"]):
        part = part.sort_values("size")
        size, cost = part["size"].to_numpy(float), part["seconds"].to_numpy(float)
        slopes = np.diff(np.log(cost)) / np.diff(np.log(size))
        # Below ~20 ms fixed costs dominate; the growth that matters is at the large end.
        big = cost[1:] > 0.02
        rows.append({"backend": backend, "axis": axis, "read": read,
                     "exponent (largest sizes)": float(slopes[-1]) if len(slopes) else math.nan,
                     "max exponent above 20 ms": float(slopes[big].max()) if big.any() else math.nan})
    return pd.DataFrame(rows)


def figure(frame: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("runs x 3 metrics x 10 points", "10 runs, growing points"))
    for col, axis in enumerate(["runs", "points"], start=1):
        part = frame[frame["axis"] == axis]
        for (backend, read), series in part.groupby(["backend", "read"]):
            series = series.sort_values("size")
            fig.add_trace(
                go.Scatter(x=series["size"], y=series["seconds"], mode="lines+markers",
                           name=f"{backend}: {read}", legendgroup=f"{backend}: {read}", showlegend=col == 1,
                           line={"dash": "dot" if "floor" in read or "mlflow" in read else "solid"}),
                row=1, col=col,
            )
        fig.update_xaxes(type="log", title_text=axis, row=1, col=col)
        fig.update_yaxes(type="log", title_text="seconds", row=1, col=col)
    fig.update_layout(title="Cost of each read as the store grows (log-log; slope 1 = linear)", height=600)
    return fig


def run_backend(backend: str, make_uri: Callable[[str], str], args: argparse.Namespace) -> list[dict]:
    """Build every store, then measure them round by round (each round every size once),
    so a change in the machine's load falls on all sizes alike; medians of the rounds."""
    shapes = [("runs", n, n, 3, 10) for n in (10, 100, 1000, 10_000) if n <= args.max_runs]
    shapes += [("points", p, 10, 5, p // 50) for p in (10_000, 100_000, 1_000_000, 10_000_000, 20_000_000)
               if args.min_points <= p <= args.max_points]
    stores = []
    for axis, size, n_runs, n_metrics, n_steps in shapes:
        uri = make_uri(f"g_{axis}_{size}")
        started = time.perf_counter()
        exp = build(uri, n_runs, n_metrics, n_steps)
        points = n_runs * n_metrics * n_steps
        print(f"  {backend:10s} built {axis:6s} {size:>10,} in {time.perf_counter() - started:.0f}s", flush=True)
        stores.append((axis, size, n_runs, points, uri, exp))
    seconds: dict[tuple[str, int, str], list[float]] = {}
    for round_ in range(args.repeat):
        for axis, size, _, points, uri, exp in stores:
            if round_ and points > 1_000_000:
                continue  # the largest stores once: minutes each
            for read, value in measure(uri, exp, points, 1).items():
                seconds.setdefault((axis, size, read), []).append(value)
    rows = []
    for axis, size, n_runs, points, _, _ in stores:
        got = {read: float(np.median(v)) for (a, s, read), v in seconds.items() if (a, s) == (axis, size)}
        rows += [{"backend": backend, "axis": axis, "size": size, "runs": n_runs, "points": points,
                  "read": read, "seconds": value} for read, value in got.items()]
        print(f"  {backend:10s} {axis:6s} {size:>10,}: " + "  ".join(f"{k} {v:.3f}s" for k, v in got.items()),
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-runs", type=int, default=10_000)
    parser.add_argument("--max-points", type=int, default=1_000_000,
                        help="largest store of the points axis (--full: 20,000,000)")
    parser.add_argument("--min-points", type=int, default=0,
                        help="smallest store of the points axis (with --full --max-runs 0 --min-points 10000000:"
                             " only the two largest)")
    parser.add_argument("--full", action="store_true", help="the points axis up to 20,000,000 (an hour here)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (stores above 1,000,000 points: one)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "growth.html")
    args = parser.parse_args()
    if args.full:
        args.max_points = 20_000_000

    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="trackbook-growth-"))
    try:
        if not args.no_sqlite:
            rows += run_backend("sqlite", lambda name: f"sqlite:///{work / name}.db", args)
        if not args.no_postgres:
            from trackbook.servers import postgres_server

            with postgres_server(work / "pg") as pg:
                rows += run_backend("postgresql", pg.create_database, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        table = frame.pivot_table(index=["backend", "axis", "size"], columns="read", values="seconds")
        print(f"\nseconds (medians of {args.repeat} rounds up to 1,000,000 points, else one run):")
        print(table.round(3).to_string())
        ratio = (table["history() cold"] / table["floor: ADBC into Arrow"]).rename("cold / floor")
        print("\nhistory() cold against the ADBC floor (target <= 1.3 at the large sizes):")
        print(ratio.round(2).to_string())
        exps = pd.concat([growth_exponents(frame, "runs"), growth_exponents(frame, "points")], ignore_index=True)
        print("\ncost growth, d log(seconds) / d log(size) (1.0 = linear):")
        print(exps.round(2).to_string(index=False))
        worst = exps["max exponent above 20 ms"].max()
        print(f"\nlargest growth exponent of any read above 20 ms: {worst:.2f} (target <= 1.0, with noise ~1.15)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure(frame).write_html(args.out, include_plotlyjs="cdn")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
