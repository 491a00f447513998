"""history() through one mlflow server database with and without authentication, side by side.

Two mlflow servers on the same PostgreSQL database (scram-sha-256, bound to 127.0.0.2):
``--app-name trackbook`` (no users) and ``--app-name trackbook-auth`` (MLflow's
basic-auth app with trackbook's Arrow endpoint behind its permission checks), read by a
user with READ on the experiment. Cold reads (``cache=False``), alternated, best of N.

    python benchmarks/team_auth.py                      # 20 runs x 5 metrics x 2,000 steps (200,000 points)
    python benchmarks/team_auth.py --runs 200           # 2,000,000 points
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.2"


def _fill(client, n_runs: int, n_metrics: int, n_steps: int) -> list[str]:
    from mlflow.entities import Metric

    exp = client.create_experiment("bench")
    rng = np.random.default_rng(0)
    ids = []
    for r in range(n_runs):
        run_id = client.create_run(exp, run_name=f"run-{r:04d}").info.run_id
        points = [Metric(f"m{m}", float(v), 1_767_225_600_000 + s, s) for m in range(n_metrics)
                  for s, v in enumerate(np.cumsum(rng.normal(size=n_steps)))]
        for i in range(0, len(points), 1000):
            client.log_batch(run_id, metrics=points[i : i + 1000])
        client.set_terminated(run_id)
        ids.append(run_id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mlflow.server.auth.client as auth_client
    from mlflow.tracking import MlflowClient

    import trackbook as tb
    from trackbook.servers import MlflowAuth, MlflowServer, postgres_server

    with tempfile.TemporaryDirectory(prefix="trackbook-bench-auth-") as work, \
            postgres_server(Path(work) / "pg", host=HOST) as pg:
        os.environ.update(pg.env)
        plain = MlflowServer(pg.uri("mlflow"), Path(work) / "plain", host=HOST, env=pg.env)
        auth = MlflowAuth(Path(work) / "auth")
        admin = auth.admin_password
        secured = MlflowServer(pg.uri("mlflow"), Path(work) / "secured", host=HOST, env=pg.env, auth=auth)
        try:
            plain_url, secured_url = plain.start(), secured.start()
            started = time.perf_counter()
            run_ids = _fill(MlflowClient(pg.uri("mlflow")), args.runs, args.metrics, args.steps)  # direct SQL: faster to fill
            points = args.runs * args.metrics * args.steps
            print(f"{points:,} points in {args.runs} runs written in {time.perf_counter() - started:.0f}s")
            os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=admin)
            admin_client = auth_client.AuthServiceClient(secured_url)
            admin_client.create_user("reader", "reader-password-1")
            exp = MlflowClient(secured_url).get_experiment_by_name("bench").experiment_id
            admin_client.grant_user_permission("reader", "experiment", exp, "READ")
            times: dict[str, list[float]] = {"without authentication": [], "with authentication (READ user)": []}
            for _ in range(args.repeats):
                for label, url in zip(times, (plain_url, secured_url), strict=True):
                    if "with auth" in label:
                        os.environ.update(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="reader-password-1")
                    else:
                        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
                        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
                    store = tb.connect(url)
                    t0 = time.perf_counter()
                    frame = store.history(run_ids, cache=False)
                    times[label].append(time.perf_counter() - t0)
                    assert len(frame) == points, (label, len(frame))
            best = {label: min(ts) for label, ts in times.items()}
            for label, t in best.items():
                print(f"history(), {label:32s} best of {args.repeats}: {t:6.2f}s  ({points / t / 1e6:.2f} M points/s)")
            ratio = best["with authentication (READ user)"] / best["without authentication"]
            print(f"with / without authentication: {ratio:.2f}x")
        finally:
            plain.stop()
            secured.stop()


if __name__ == "__main__":
    main()
