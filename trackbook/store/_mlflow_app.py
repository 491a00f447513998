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

A third, ``POST /ajax-api/2.0/trackbook/metrics/history-from`` (JSON body
``{"series": [[run_id, metric, step or null, timestamp or null], ...]}``), sends as
Arrow the points of each series after that point: a greater step, or the same step
logged later (:func:`trackbook.store._mlflow_sql.read_points_from`):
what a :class:`~trackbook.store.follow.Follower` asks each poll, at the cost of the
new points only.

The endpoints only read, and only what MLflow's ``get-history`` and ``get-run``
endpoints already serve to the same caller. A store that is not SQL answers 501 and
clients use MLflow's endpoints instead.

``mlflow server --app-name trackbook-auth`` is MLflow's basic-auth app (users, passwords,
per-experiment READ/EDIT/MANAGE) with the same endpoints inside it: each is one
more route behind the auth app's ``before_request`` check, which answers 401 without
valid credentials and 403 unless the user may READ the experiment of every asked run,
exactly as for MLflow's own ``get-history-bulk``.
"""

from __future__ import annotations

import os
from typing import Any

ROUTE = "/ajax-api/2.0/trackbook/metrics/history"
FROM_ROUTE = "/ajax-api/2.0/trackbook/metrics/history-from"
INDEX_ROUTE = "/ajax-api/2.0/trackbook/runs/history-index"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_RUNS = 1000
MAX_METRICS = 1000
MAX_SERIES = 1000


def _add_route() -> tuple[Any, str]:
    from mlflow.server import app as flask_app
    from mlflow.server.handlers import _add_static_prefix

    route = _add_static_prefix(ROUTE)
    if route not in {rule.rule for rule in flask_app.url_map.iter_rules()}:
        flask_app.add_url_rule(route, "trackbook_metrics_history", _history_view, methods=["GET"])
        flask_app.add_url_rule(
            _add_static_prefix(INDEX_ROUTE), "trackbook_history_index", _index_view, methods=["POST"]
        )
        flask_app.add_url_rule(
            _add_static_prefix(FROM_ROUTE), "trackbook_history_from", _from_view, methods=["POST"]
        )
    return flask_app, route


def create_auth_app() -> Any:
    """MLflow's basic-auth app with the bulk history endpoint behind its permission checks."""
    from mlflow.server import auth

    from mlflow.server.handlers import _add_static_prefix

    flask_app, route = _add_route()
    auth.BEFORE_REQUEST_VALIDATORS[(route, "GET")] = _can_read_history
    auth.BEFORE_REQUEST_VALIDATORS[(_add_static_prefix(INDEX_ROUTE), "POST")] = _can_read_index
    auth.BEFORE_REQUEST_VALIDATORS[(_add_static_prefix(FROM_ROUTE), "POST")] = _can_read_from
    return auth.create_app(flask_app)


def _can_read_index() -> bool:
    """The history index tells point counts: READ on the asked runs' experiments, as for their points."""
    from flask import request

    body = request.get_json(silent=True) or {}
    run_ids = body.get("run_ids")
    if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
        return True  # the view answers 400 and reads nothing
    return _can_read_runs(run_ids)


def _can_read_from() -> bool:
    """Points from a step on are points: READ on the experiments of every named run."""
    from flask import request

    series = _parse_series((request.get_json(silent=True) or {}).get("series"))
    if series is None:
        return True  # the view answers 400 and reads nothing
    return _can_read_runs(list(dict.fromkeys(s[0] for s in series)))


def _parse_series(series: Any) -> list[tuple[str, str, int | None, int | None]] | None:
    """``[[run_id, metric, step or null, timestamp or null], ...]`` as tuples (the
    timestamp may be left out), or None if it is not that."""
    if not isinstance(series, list) or not series:
        return None
    out = []
    for item in series:
        if not (isinstance(item, list) and len(item) in (3, 4) and isinstance(item[0], str)
                and isinstance(item[1], str) and all(_int_or_none(v) for v in item[2:])):
            return None
        out.append((item[0], item[1], item[2], item[3] if len(item) == 4 else None))
    return out


def _int_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63)


def _can_read_history() -> bool:
    """READ on the experiment of every asked run that exists (unknown runs have no points).

    The same decision as MLflow's check for ``get-history-bulk``, taken once per
    experiment instead of once per run, with the runs' experiments read in one query
    (MLflow's check loads every run in full).
    """
    from flask import request

    return _can_read_runs(request.args.getlist("run_id"))


def _can_read_runs(run_ids: list[str]) -> bool:
    from mlflow.server import auth
    from mlflow.server.auth.permissions import RESOURCE_TYPE_RUN
    from mlflow.server.handlers import _get_tracking_store

    store = _get_tracking_store()
    engine = getattr(store, "engine", None)
    bulk = getattr(auth, "_authorize_bulk_in_experiments", None)
    if engine is None or bulk is None:  # another store or another MLflow: MLflow's own check, run by run
        existing = [run_id for run_id in run_ids if _run_exists(store, run_id)]
        return not existing or auth.validate_can_read_metric_history_bulk(existing)
    import sqlalchemy as sa

    query = sa.text("SELECT DISTINCT experiment_id FROM runs WHERE run_uuid IN :ids").bindparams(
        sa.bindparam("ids", expanding=True))
    with engine.connect() as conn:
        experiment_ids = sorted(str(row[0]) for row in conn.execute(query, {"ids": list(run_ids)}))
    return not experiment_ids or bulk(experiment_ids, RESOURCE_TYPE_RUN, "read")


def _run_exists(store: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        store.get_run(run_id)
    except MlflowException:
        return False
    return True


def create_app() -> Any:
    """MLflow's server app (ASGI under uvicorn, else Flask) with the bulk history endpoint."""
    flask_app, _ = _add_route()
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


def _from_view() -> Any:
    from flask import Response, request
    from mlflow.server.handlers import _get_tracking_store

    from trackbook.store._mlflow_sql import read_points_from

    series = _parse_series((request.get_json(silent=True) or {}).get("series"))
    if series is None:
        return _error(400, 'Send a JSON body {"series": [["<run id>", "<metric>", <step or null>, '
                           '<timestamp or null>], ...]}: the points after each (step, timestamp).')
    if len(series) > MAX_SERIES:
        return _error(400, f"At most {MAX_SERIES} series per request.")
    store = _get_tracking_store()
    engine = getattr(store, "engine", None)
    if engine is None:
        return _error(501, "This server's store is not a SQL database; use MLflow's get-history endpoints.")
    visible = set(_visible_runs(store, list(dict.fromkeys(s[0] for s in series))))
    frame = read_points_from(engine, [s for s in series if s[0] in visible])
    return Response(_arrow_bytes(frame), mimetype=ARROW_STREAM)


def _arrow_stream(store: Any, engine: Any, run_ids: list[str], metrics: list[str]) -> bytes:
    from trackbook.store._mlflow_sql import read_points

    return _arrow_bytes(read_points(engine, _visible_runs(store, run_ids), metrics))


def _arrow_bytes(frame: Any) -> bytes:
    import pyarrow as pa

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

