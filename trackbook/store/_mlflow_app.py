"""The server half of the REST bulk path: an ``mlflow server`` app with one more endpoint.

``mlflow server --app-name trackbook`` (what ``trackbook serve`` starts) is MLflow's own
server plus ``GET /ajax-api/2.0/trackbook/metrics/history``: every point of the asked
metrics of the asked runs, read with trackbook's set-based SQL reader from the server's
own database and sent as one Apache Arrow IPC stream. MLflow's endpoints build an ORM
object and a JSON object per point (about 30-45 microseconds each on the server); this
one sends columns.

A second endpoint, ``POST /ajax-api/2.0/trackbook/runs/history-index`` (JSON body
``{"run_ids": [...]}``), answers each run's status and, per metric, its point count and
newest row (:func:`trackbook.store._mlflow_sql.history_index`): what the client's
history cache checks before it serves a finished run from disk. MLflow's own endpoints
only tell the latest point of each metric, which a point logged later at an earlier
step leaves unchanged.

The endpoints only read, and only what MLflow's ``get-history`` and ``get-run``
endpoints already serve to the same caller. A store that is not SQL answers 501 and
clients use MLflow's endpoints instead.
"""

from __future__ import annotations

import os
from typing import Any

ROUTE = "/ajax-api/2.0/trackbook/metrics/history"
INDEX_ROUTE = "/ajax-api/2.0/trackbook/runs/history-index"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_RUNS = 1000
MAX_METRICS = 1000


def create_app() -> Any:
    """MLflow's server app (ASGI under uvicorn, else Flask) with the bulk history endpoint."""
    from mlflow.server import app as flask_app
    from mlflow.server.handlers import _add_static_prefix

    route = _add_static_prefix(ROUTE)
    if route not in {rule.rule for rule in flask_app.url_map.iter_rules()}:
        flask_app.add_url_rule(route, "trackbook_metrics_history", _history_view, methods=["GET"])
        flask_app.add_url_rule(
            _add_static_prefix(INDEX_ROUTE), "trackbook_history_index", _index_view, methods=["POST"]
        )
    if os.environ.get("_MLFLOW_SGI_NAME", "uvicorn") == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app


def _error(status: int, message: str) -> Any:
    from flask import jsonify

    response = jsonify({"error_code": "INVALID_PARAMETER_VALUE" if status == 400 else "NOT_IMPLEMENTED",
                        "message": message})
    response.status_code = status
    return response


def _history_view() -> Any:
    from flask import Response, request
    from mlflow.server.handlers import _get_tracking_store

    run_ids = request.args.getlist("run_id")
    metrics = request.args.getlist("metric_key")
    if not run_ids or not metrics:
        return _error(400, "Give at least one run_id and one metric_key.")
    if len(run_ids) > MAX_RUNS or len(metrics) > MAX_METRICS:
        return _error(400, f"At most {MAX_RUNS} run_id and {MAX_METRICS} metric_key values per request.")
    store = _get_tracking_store()
    engine = getattr(store, "engine", None)
    if engine is None:
        return _error(501, "This server's store is not a SQL database; use MLflow's get-history endpoints.")
    return Response(_arrow_stream(store, engine, run_ids, metrics), mimetype=ARROW_STREAM)


def _index_view() -> Any:
    from flask import jsonify, request
    from mlflow.server.handlers import _get_tracking_store

    from trackbook.store._mlflow_sql import history_index

    body = request.get_json(silent=True) or {}
    run_ids = body.get("run_ids")
    if not isinstance(run_ids, list) or not run_ids or not all(isinstance(r, str) for r in run_ids):
        return _error(400, 'Send a JSON body {"run_ids": ["<run id>", ...]} with at least one run id.')
    if len(run_ids) > MAX_RUNS:
        return _error(400, f"At most {MAX_RUNS} run ids per request.")
    store = _get_tracking_store()
    engine = getattr(store, "engine", None)
    if engine is None:
        return _error(501, "This server's store is not a SQL database; use MLflow's get-run endpoints.")
    records = history_index(engine, _visible_runs(store, run_ids))
    return jsonify(
        {"runs": [{"run_id": r.run_id, "status": r.status, "metrics": r.metric_signatures} for r in records]}
    )


def _arrow_stream(store: Any, engine: Any, run_ids: list[str], metrics: list[str]) -> bytes:
    import pyarrow as pa

    from trackbook.store._mlflow_sql import read_points

    frame = read_points(engine, _visible_runs(store, run_ids), metrics)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _visible_runs(store: Any, run_ids: list[str]) -> list[str]:
    """The runs this request may read: MLflow's own filter (workspaces) where it has one."""
    filter_ids = getattr(store, "_filter_entity_ids", None)
    if filter_ids is None:
        return run_ids
    from mlflow.entities.entity_type import EntityAssociationType

    with store.ManagedSessionMaker() as session:
        return list(filter_ids(session, EntityAssociationType.RUN, list(run_ids)))

