"""Bulk reads from an ``mlflow server`` over REST: the HTTP path.

The server's ``metrics/get-history-bulk`` endpoint returns one metric's points for up
to 100 runs in one response, but at most 25,000 points, cut without a word. Its points
come ordered by run id, so in a full response every run but the last one seen is
complete: the others are asked for again, and a run that alone fills a response is
read through the paged ``metrics/get-history`` endpoint instead. Nothing is ever
silently sampled. Requests run concurrently on a bounded pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook.store._mlflow_sql import restore_special_values

BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
PAGED_ENDPOINT = "/api/2.0/mlflow/metrics/get-history"
BULK_MAX_RUNS = 100
BULK_MAX_POINTS = 25_000
PAGE_SIZE = 25_000
WORKERS = 8


def host_creds_of(client: Any):
    """Credentials of an MlflowClient's REST store, or None for other stores."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    get = getattr(store, "get_host_creds", None)
    return get() if callable(get) else None


def read_points(host_creds: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """Every point of these metrics of these runs."""
    tasks = [
        (metric, run_ids[i : i + BULK_MAX_RUNS]) for metric in metrics for i in range(0, len(run_ids), BULK_MAX_RUNS)
    ]
    with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(tasks)))) as pool:
        chunks = list(pool.map(lambda task: _read_metric(host_creds, *task), tasks))
    rows = [row for chunk in chunks for row in chunk]
    if not rows:
        return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
    run_col, key_col, steps, values, times = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            C.RUN_ID: pd.Categorical(run_col),
            C.METRIC: pd.Categorical(key_col),
            C.STEP: np.fromiter(steps, np.int64, len(rows)),
            C.VALUE: restore_special_values(np.array(values, dtype="float64")),
            C.TIMESTAMP: np.fromiter(times, np.int64, len(rows)),
        }
    )


def _request(host_creds: Any, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(host_creds=host_creds, endpoint=endpoint, method="GET", params=params)
    return verify_rest_response(response, endpoint).json()


def _read_metric(host_creds: Any, metric: str, run_ids: list[str]) -> list[tuple]:
    """One metric's points for up to 100 runs, in requests the server will not cut.

    A request that comes back full tells how many points a run holds; later requests
    ask for as many runs as fit in one response, so the server never sorts and cuts
    more than it returns.
    """
    out: list[tuple] = []
    pending = sorted(run_ids)
    size = len(pending)
    while pending:
        chunk = pending[:size]
        body = _request(
            host_creds,
            BULK_ENDPOINT,
            {"run_id": chunk, "metric_key": metric, "max_results": BULK_MAX_POINTS},
        )
        points = body.get("metrics", [])
        order = [p["run_id"] for p in points]
        if any(a > b for a, b in zip(order, order[1:])):  # not in run order: trust nothing, page per run
            return out + [row for run_id in pending for row in _paged(host_creds, run_id, metric)]
        if len(points) < BULK_MAX_POINTS:
            out.extend(_rows(points, metric))
            pending = pending[len(chunk) :]
            continue
        # A full response may be cut inside its last run: keep the runs before it.
        last = points[-1]["run_id"]
        complete = [p for p in points if p["run_id"] != last]
        out.extend(_rows(complete, metric))
        if not complete:  # one run alone fills a response: page through it
            out.extend(_paged(host_creds, last, metric))
            pending = [r for r in pending if r > last]
            size = 1
        else:
            n_complete = len(set(order)) - 1
            per_run = len(complete) / n_complete
            size = max(1, int(0.8 * BULK_MAX_POINTS / per_run))
            pending = [r for r in pending if r >= last]
    return out


def _paged(host_creds: Any, run_id: str, metric: str) -> list[tuple]:
    out: list[tuple] = []
    token = None
    while True:
        params = {"run_id": run_id, "metric_key": metric, "max_results": PAGE_SIZE}
        if token:
            params["page_token"] = token
        body = _request(host_creds, PAGED_ENDPOINT, params)
        out.extend(_rows(body.get("metrics", []), metric, run_id))
        token = body.get("next_page_token")
        if not token:
            return out


def _rows(points: list[dict[str, Any]], metric: str, run_id: str | None = None) -> list[tuple]:
    """(run_id, metric, step, value, timestamp) tuples; protobuf JSON leaves out zeros."""
    nan = float("nan")
    return [
        (
            run_id or p["run_id"],
            metric,
            int(p.get("step", 0)),
            nan if p.get("value", 0.0) is None else float(p.get("value", 0.0)),
            int(p.get("timestamp", 0)),
        )
        for p in points
    ]
