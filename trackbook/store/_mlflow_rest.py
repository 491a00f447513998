"""Bulk reads from an ``mlflow server`` over REST: the HTTP path.

A server started as ``mlflow server --app-name trackbook`` (``trackbook serve``) has
one more endpoint (:mod:`trackbook.store._mlflow_app`) that sends every point of many
runs as Arrow columns; it is asked first, and a server without it (404, or 501 for a
store that is not SQL) is remembered and read through MLflow's own endpoints:

The server's ``metrics/get-history-bulk`` endpoint returns one metric's points for up
to 100 runs in one response, but at most 25,000 points, cut without a word. Its points
come ordered by run id, so in a full response every run but the last one seen is
complete: the others are asked for again, and a run that alone fills a response is
read through the paged ``metrics/get-history`` endpoint instead. Nothing is ever
silently sampled. Requests run concurrently on a bounded pool.

A :class:`~trackbook.store.follow.Follower` asks, per series, for the points from a
step on (:func:`read_points_from`): trackbook's server answers them as Arrow in one
request per 1,000 series; a stock server through ``metrics/get-history-bulk-interval``
with ``start_step``, one request per series. That endpoint samples a range holding more
than 2,500 points (keeping its first and last), so a full answer is split in two step
ranges, again, until no answer is full: no point is lost, and a poll costs about one
request per series that moved.

The history cache needs, per series, something that changes whenever a point is
added. trackbook's server tells it (point count and newest row, :func:`history_index`);
a stock server cannot: its run records carry only each metric's latest point, which a
point logged later at an earlier step leaves as it was, and counting would mean
reading every point. So runs of a stock server are never served from the cache
(``MLflowStore._history_cacheable``); they are read again each time.

On a server with authentication (``--app-name trackbook-auth``) both paths send MLflow's
credentials (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, or a URI's
``user:password@``); a 401 or 403 becomes :class:`~trackbook.errors.AccessDenied`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from trackbook import columns as C
from trackbook._uri import redact_uri
from trackbook.errors import AccessDenied
from trackbook.store._mlflow_app import ARROW_STREAM, FROM_ROUTE, INDEX_ROUTE, MAX_METRICS, MAX_RUNS, MAX_SERIES, ROUTE
from trackbook.store.frames import RunRecord
from trackbook.store._mlflow_sql import restore_special_values

BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
PAGED_ENDPOINT = "/api/2.0/mlflow/metrics/get-history"
INTERVAL_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
INTERVAL_MAX_RESULTS = 2500  # the server's MAX_RESULTS_PER_RUN: a fuller range is sampled
LAST_STEP = 2**63 - 1
BULK_MAX_RUNS = 100
BULK_MAX_POINTS = 25_000
PAGE_SIZE = 25_000
WORKERS = 8
ARROW_RUNS = 25  # runs per Arrow request: several requests, so that server workers share the work
ARROW_WORKERS = 4

#: Server URLs known to lack the Arrow endpoint (stock mlflow servers).
_no_arrow: set[str] = set()
#: Server URLs known to lack the history-index endpoint.
_no_index: set[str] = set()
#: Server URLs known to lack the points-from-a-step endpoint.
_no_from: set[str] = set()


def host_creds_of(client: Any):
    """Credentials of an MlflowClient's REST store, or None for other stores."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    get = getattr(store, "get_host_creds", None)
    return get() if callable(get) else None


def history_index(host_creds: Any, run_ids: list[str]) -> list[RunRecord] | None:
    """Status and per-metric point count of these runs from trackbook's server, or None
    where the server has no such endpoint (a stock mlflow server)."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    if host_creds.host in _no_index:
        return None
    out: list[RunRecord] = []
    for i in range(0, max(1, len(run_ids)), MAX_RUNS):
        chunk = run_ids[i : i + MAX_RUNS]
        if not chunk:
            break
        response = http_request(host_creds=host_creds, endpoint=INDEX_ROUTE, method="POST", json={"run_ids": chunk})
        _check_access(response, host_creds, chunk)
        if response.status_code in (404, 405, 501):
            _no_index.add(host_creds.host)
            return None
        body = verify_rest_response(response, INDEX_ROUTE).json()
        out.extend(
            RunRecord(r["run_id"], "", "", "", r["status"], None, None, metric_signatures=dict(r["metrics"]))
            for r in body["runs"]
        )
    return out


def read_points(host_creds: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """Every point of these metrics of these runs."""
    if run_ids and metrics and host_creds.host not in _no_arrow:
        frame = _read_arrow(host_creds, run_ids, metrics)
        if frame is not None:
            return frame
    return _read_json(host_creds, run_ids, metrics)


def _read_arrow(host_creds: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame | None:
    """Through trackbook's Arrow endpoint, or None where the server has none."""
    tasks = [
        (run_ids[i : i + ARROW_RUNS], metrics[j : j + MAX_METRICS])
        for i in range(0, len(run_ids), ARROW_RUNS)
        for j in range(0, len(metrics), MAX_METRICS)
    ]
    first = _arrow_request(host_creds, *tasks[0])
    if first is None:
        return None
    with ThreadPoolExecutor(max_workers=min(ARROW_WORKERS, max(1, len(tasks) - 1))) as pool:
        parts = [first, *pool.map(lambda task: _arrow_request(host_creds, *task), tasks[1:])]
    if any(part is None for part in parts):  # the server changed under us: read it the other way
        return None
    # Requests that found no points carry label columns of another type; they add nothing.
    parts = [p for p in parts if len(p)] or [first]
    if len(parts) == 1:
        return parts[0]
    return pd.DataFrame(
        {
            col: union_categoricals([p[col].astype("category") for p in parts])
            if col in (C.RUN_ID, C.METRIC)
            else np.concatenate([p[col].to_numpy() for p in parts])
            for col in C.HISTORY_COLUMNS
        }
    )


def _arrow_request(host_creds: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame | None:
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        host_creds=host_creds, endpoint=ROUTE, method="GET", params={"run_id": run_ids, "metric_key": metrics}
    )
    return _arrow_answer(response, host_creds, run_ids, ROUTE, _no_arrow, (404, 501))


def _arrow_answer(response: Any, host_creds: Any, run_ids: list[str], endpoint: str, lacking: set[str],
                  absent: tuple[int, ...]) -> pd.DataFrame | None:
    """The frame an Arrow endpoint sent, or None (the host remembered in ``lacking``) where
    the server has no such endpoint; 401/403 raise AccessDenied."""
    import pyarrow as pa
    from mlflow.utils.rest_utils import verify_rest_response

    _check_access(response, host_creds, run_ids)
    if response.status_code in absent or (
        response.ok and not response.headers.get("Content-Type", "").startswith(ARROW_STREAM)
    ):
        lacking.add(host_creds.host)
        return None
    verify_rest_response(response, endpoint)
    with pa.ipc.open_stream(response.content) as reader:
        return reader.read_pandas()


def _read_json(host_creds: Any, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """Through MLflow's get-history-bulk (and paged get-history) endpoints."""
    tasks = [
        (metric, run_ids[i : i + BULK_MAX_RUNS]) for metric in metrics for i in range(0, len(run_ids), BULK_MAX_RUNS)
    ]
    with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(tasks)))) as pool:
        chunks = list(pool.map(lambda task: _read_metric(host_creds, *task), tasks))
    return _frame_of_rows([row for chunk in chunks for row in chunk])


def _request(host_creds: Any, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(host_creds=host_creds, endpoint=endpoint, method="GET", params=params)
    named = params.get("run_id", params.get("run_ids"))
    run_ids = named if isinstance(named, list) else [named]
    _check_access(response, host_creds, run_ids)
    return verify_rest_response(response, endpoint).json()


def _check_access(response: Any, host_creds: Any, run_ids: list[str]) -> None:
    """401 and 403 as errors that say whose credentials were refused and what to ask for."""
    if response.status_code not in (401, 403):
        return
    from urllib.parse import urlsplit

    server = redact_uri(host_creds.host)
    user = host_creds.username or urlsplit(host_creds.host).username
    shown = ", ".join(run_ids[:5]) + (f" and {len(run_ids) - 5} more" if len(run_ids) > 5 else "")
    if response.status_code == 401:
        raise AccessDenied(
            f"The mlflow server {server} refused the credentials for reading the history of runs {shown} (401: "
            f"{'no credentials sent' if not user else f'wrong user name or password for {user!r}'}). Set "
            f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or connect to http://USER:PASSWORD@host:port); "
            f"the server's admin adds users with `trackbook serve users add NAME`."
        )
    raise AccessDenied(
        f"User {user!r} may not read the history of runs {shown} on {server} (403: no READ "
        f"permission on their experiment). Ask the server's admin for it: "
        f"`trackbook serve grant {user or 'USER'} EXPERIMENT READ`."
    )


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


def read_points_from(host_creds: Any, series: list[tuple[str, str, int | None, int | None]]) -> pd.DataFrame:
    """Points of each series ``(run id, metric, step, timestamp)`` after that point
    (from the step on where the timestamp is None; every point where the step is
    None), in any order. A stock server has no filter by time: from it come every
    point at the step too, for the caller to drop."""
    if not series:
        return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
    if host_creds.host not in _no_from:
        parts = [_from_request(host_creds, series[i : i + MAX_SERIES]) for i in range(0, len(series), MAX_SERIES)]
        if all(p is not None for p in parts):
            return _concat_labelled([p for p in parts if len(p)] or parts[:1])
    whole: dict[tuple[str, ...], list[str]] = {}
    by_run: dict[str, list[str]] = {}
    for run_id, key, step, _ in series:
        if step is None:
            by_run.setdefault(run_id, []).append(key)
    for run_id, keys in by_run.items():
        whole.setdefault(tuple(sorted(keys)), []).append(run_id)
    parts = [read_points(host_creds, run_ids, list(keys)) for keys, run_ids in whole.items()]
    ranged = [(r, k, int(s)) for r, k, s, _ in series if s is not None]
    if ranged:
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(ranged))) as pool:
            rows = [row for chunk in pool.map(lambda s: _interval(host_creds, *s, LAST_STEP), ranged) for row in chunk]
        parts.append(_frame_of_rows(rows))
    parts = [p for p in parts if len(p)] or parts[:1]
    return _concat_labelled(parts)


def _from_request(host_creds: Any, series: list[tuple[str, str, int | None, int | None]]) -> pd.DataFrame | None:
    """Through trackbook's points-from endpoint, or None where the server has none."""
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        host_creds=host_creds, endpoint=FROM_ROUTE, method="POST", json={"series": [list(s) for s in series]}
    )
    run_ids = list(dict.fromkeys(s[0] for s in series))
    return _arrow_answer(response, host_creds, run_ids, FROM_ROUTE, _no_from, (404, 405, 501))


def _interval(host_creds: Any, run_id: str, metric: str, start: int, end: int) -> list[tuple]:
    """Every point of one series with ``start <= step <= end``, from MLflow's bulk-interval
    endpoint: a full answer may be a sample, so its range is split until none is full."""
    body = _request(
        host_creds,
        INTERVAL_ENDPOINT,
        {"run_ids": [run_id], "metric_key": metric, "start_step": start, "end_step": end,
         "max_results": INTERVAL_MAX_RESULTS},
    )
    points = body.get("metrics", [])
    if len(points) < INTERVAL_MAX_RESULTS:
        return _rows(points, metric, run_id)
    steps = [int(p.get("step", 0)) for p in points]
    low, high = min(steps), max(steps)
    if low == high:  # one step holds them all: no range splits it; page through the whole series
        return [row for row in _paged(host_creds, run_id, metric) if start <= row[2] <= end]
    middle = low + (high - low) // 2
    return _interval(host_creds, run_id, metric, low, middle) + _interval(host_creds, run_id, metric, middle + 1, high)


def _frame_of_rows(rows: list[tuple]) -> pd.DataFrame:
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


def _concat_labelled(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if len(parts) == 1:
        return parts[0]
    return pd.DataFrame(
        {
            col: union_categoricals([p[col].astype(str).astype("category") for p in parts])
            if col in (C.RUN_ID, C.METRIC)
            else np.concatenate([p[col].to_numpy() for p in parts])
            for col in C.HISTORY_COLUMNS
        }
    )
