"""MLflow backend of :class:`~trackbook.store.Store`: any tracking URI mlflow accepts."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from trackbook import columns as C
from trackbook.errors import RunNotFound, StoreUnavailable
from trackbook.store.base import RunRecord, Store, redact_uri

_log = logging.getLogger(__name__)

_PAGE = 1000  # search_runs page size; MLflow servers accept up to 50,000
_IDS_PER_QUERY = 100


class MLflowStore(Store):
    """Runs in an MLflow tracking store (sqlite, PostgreSQL, MySQL, or an ``mlflow server``).

    Example:
        >>> store = MLflowStore("sqlite:///mlflow.db")  # doctest: +SKIP
    """

    kind = "mlflow"
    run_id_pattern = re.compile(r"[0-9a-f]{32}")

    def __init__(self, uri: str, *, timeout: float = 10.0) -> None:
        super().__init__(uri)
        from mlflow.tracking import MlflowClient

        if uri.startswith(("http://", "https://")):
            _probe_server(uri, timeout)
        try:
            self._client = MlflowClient(tracking_uri=uri)
            self._client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds; all mean "cannot open"
            raise StoreUnavailable(
                f"Could not open the MLflow store {redact_uri(uri)}: {redact_uri(_first_line(exc))}. "
                f"Check the URI (e.g. sqlite:///mlflow.db, postgresql://user@host/db, "
                f"http://127.0.0.1:5000) and that the database or server is up."
            ) from None

    # ---------------------------------------------------------------- experiments

    def _experiments(self) -> list[Any]:
        from mlflow.entities import ViewType

        out, token = [], None
        while True:
            page = self._client.search_experiments(view_type=ViewType.ALL, max_results=_PAGE, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _list_experiments(self) -> list[dict[str, Any]]:
        return [
            {
                C.EXPERIMENT_ID: e.experiment_id,
                C.NAME: e.name,
                C.LIFECYCLE_STAGE: e.lifecycle_stage,
                C.CREATION_TIME: e.creation_time,
            }
            for e in self._experiments()
        ]

    # ----------------------------------------------------------------------- runs

    def _search(self, experiment_ids: list[str], filter_string: str = "") -> list[RunRecord]:
        names = {e.experiment_id: e.name for e in self._experiments()}
        out, token = [], None
        while True:
            page = self._client.search_runs(
                experiment_ids, filter_string=filter_string, max_results=_PAGE, page_token=token
            )
            out.extend(_record(run, names) for run in page)
            token = page.token
            if not token:
                return out

    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        if experiment_ids is None:
            experiment_ids = [e.experiment_id for e in self._experiments() if e.lifecycle_stage == "active"]
        return self._search(experiment_ids) if experiment_ids else []

    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        exp_ids = [e.experiment_id for e in self._experiments()]
        out = []
        for i in range(0, len(run_ids), _IDS_PER_QUERY):
            quoted = ", ".join(f"'{r}'" for r in run_ids[i : i + _IDS_PER_QUERY])
            out.extend(self._search(exp_ids, f"attributes.run_id IN ({quoted})"))
        return out

    # -------------------------------------------------------------------- history

    def _read_history(self, run_ids: list[str], metrics: list[str] | None) -> pd.DataFrame:
        if metrics is None:
            records = {r.run_id: r for r in self._get_runs(run_ids)}
            missing = [r for r in run_ids if r not in records]
            if missing:
                raise RunNotFound(self._missing_run_message(missing))
            wanted = {rid: sorted(records[rid].metrics) for rid in run_ids}
        else:
            self._require_runs(run_ids)
            wanted = {rid: metrics for rid in run_ids}
        cols: dict[str, list[Any]] = {c: [] for c in C.HISTORY_COLUMNS}
        for rid, keys in wanted.items():
            for key in keys:
                for m in self._client.get_metric_history(rid, key):
                    cols[C.RUN_ID].append(rid)
                    cols[C.METRIC].append(key)
                    cols[C.STEP].append(m.step)
                    cols[C.VALUE].append(m.value)
                    cols[C.TIMESTAMP].append(m.timestamp)
        frame = pd.DataFrame(cols)
        frame[C.VALUE] = unclamp(frame[C.VALUE].astype("float64"))
        return frame

    # ------------------------------------------------------------------ artifacts

    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        pending = [path or None]
        while pending:
            for info in self._client.list_artifacts(run_id, pending.pop()):
                if info.is_dir:
                    pending.append(info.path)
                else:
                    out.append((info.path, info.file_size))
        return out

    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        import mlflow.artifacts

        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=self.uri
            )
        )


def _record(run: Any, experiment_names: dict[str, str]) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        run_id=info.run_id,
        name=info.run_name or data.tags.get(C.TAG_MLFLOW_RUN_NAME, ""),
        experiment_id=info.experiment_id,
        experiment=experiment_names.get(info.experiment_id, ""),
        status=info.status,
        start_time=info.start_time,
        end_time=info.end_time,
        params=dict(data.params),
        tags=dict(data.tags),
        metrics={k: unclamp(v) for k, v in data.metrics.items()},
        parent_run_id=data.tags.get(C.TAG_MLFLOW_PARENT),
    )


def unclamp(values):
    """Undo MLflow's SQL store clamping of ±inf to ±sys.float_info.max (scalar or array)."""
    import numpy as np

    out = np.where(np.asarray(values) >= sys.float_info.max, np.inf, values)
    out = np.where(out <= -sys.float_info.max, -np.inf, out)
    return float(out) if np.ndim(out) == 0 else out


def _probe_server(uri: str, timeout: float) -> None:
    """Fail fast (instead of mlflow's minutes of retries) when a server is not there."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        raise StoreUnavailable(
            f"Could not reach the MLflow server at {redact_uri(uri)} ({type(exc).__name__}). "
            f"Start it (mlflow server --host 127.0.0.1 --port PORT ...) or point "
            f"MLFLOW_TRACKING_URI / tb.connect() at the right address."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
