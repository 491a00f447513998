"""MLflow backend of :class:`~trackbook.tracking.base.Tracker`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from trackbook import layout as L
from trackbook._uri import artifact_location, redact_uri
from trackbook.tracking.base import HealthReport, Tracker, _Deleted, now_ms

_PARAM_MAX = 6000  # MLflow's limit on a param value
_PER_BATCH = 100  # params or tags per log_batch


class MLflowTracker(Tracker):
    """Writes runs to an MLflow tracking store (sqlite, PostgreSQL, an mlflow server)."""

    backend = "mlflow"

    def __init__(self, uri: str, **kwargs) -> None:
        super().__init__(uri, **kwargs)
        self._mlflow_client = None

    @property
    def _client(self):
        # Made on first use: MLflow's client creates a sqlite store's tables, which offline mode must not.
        if self._mlflow_client is None:
            from mlflow.tracking import MlflowClient

            self._mlflow_client = MlflowClient(tracking_uri=self.uri)
        return self._mlflow_client

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self._client.create_experiment(name, artifact_location=artifact_location(self.uri, name))
        except MlflowException:  # another process created it in between
            found = self._client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _send_create(self, p: dict) -> str:
        experiment_id = self._experiment_id(p["experiment"])
        if p.get("local_id"):
            # An earlier try may have created the run and lost the answer (or a sync died right
            # after it): find that run instead of making a second one.
            found = self._client.search_runs(
                [experiment_id], filter_string=f"tags.`{L.TAG_LOCAL_ID}` = '{p['local_id']}'", max_results=1,
            )
            if found:
                return found[0].info.run_id
        tags = dict(p["tags"])
        if p["parent_run_id"]:
            tags[L.TAG_MLFLOW_PARENT] = p["parent_run_id"]
        tags[L.TAG_HEARTBEAT] = str(p["start_ms"])
        if p.get("local_id"):
            tags[L.TAG_LOCAL_ID] = p["local_id"]
        run = self._client.create_run(experiment_id, start_time=p["start_ms"], tags=tags, run_name=p["name"])
        return run.info.run_id

    def _send_params(self, p: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:_PARAM_MAX]) for k, v in p.items()]
        for i in range(0, len(items), _PER_BATCH):
            self._log_batch("params", items[i : i + _PER_BATCH])

    def _send_tags(self, p: dict) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in p.items()]
        for i in range(0, len(items), _PER_BATCH):
            self._log_batch("tags", items[i : i + _PER_BATCH])

    def _send_metrics(self, p: list) -> None:
        from mlflow.entities import Metric

        self._log_batch("metrics", [Metric(k, v, ts, step) for k, v, ts, step in p])

    def _log_batch(self, field: str, items: list) -> None:
        """``log_batch`` of ``items``; what the store refuses for good is left out, not retried.

        MLflow refuses a whole batch for one bad name (``lr (x)``) or a param logged again
        with another value; retrying it would hold every later write of the run behind it
        for ever. So a refused batch is split by key, and the keys refused alone are
        dropped with a warning naming them; every other item is delivered.
        """
        from mlflow.exceptions import MlflowException

        try:
            self._client.log_batch(self.run_id, **{field: items})
            return
        except MlflowException as exc:
            if exc.error_code != "INVALID_PARAMETER_VALUE":
                raise  # the store is down or busy: the outbox keeps it and retries
            reason = str(exc).splitlines()[0][:200]
        keys = list(dict.fromkeys(item.key for item in items))
        if len(keys) == 1:
            warnings.warn(f"trackbook: the store refused the {field[:-1]} {keys[0]!r} of run {self.run_id} "
                          f"({reason}); it is left out, the rest of the run is logged.", RuntimeWarning, stacklevel=2)
            return
        for key in keys:
            self._log_batch(field, [item for item in items if item.key == key])

    def _send_artifact(self, p: dict) -> None:
        if Path(p["path"]).is_dir():
            folder = Path(p["artifact_path"] or "") / Path(p["path"]).name
            self._client.log_artifacts(self.run_id, p["path"], artifact_path=str(folder))
        else:
            self._client.log_artifact(self.run_id, p["path"], artifact_path=p["artifact_path"])

    def _send_heartbeat(self, p: dict) -> None:
        self._client.set_tag(self.run_id, L.TAG_HEARTBEAT, str(p["ms"]))

    def _send_terminate(self, p: dict) -> None:
        self._client.set_terminated(self.run_id, p["status"], end_time=p["end_ms"])

    def _resume(self, run_id: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise _Deleted(run_id) from exc
            raise
        if run.info.lifecycle_stage == "deleted":
            raise _Deleted(run_id)
        self.run_id = run_id

    def health_check(self) -> HealthReport:
        report = HealthReport(ok=True, backend=self.backend, uri=redact_uri(self.uri))
        if self.uri.startswith(("http://", "https://")):
            import requests

            try:
                requests.get(self.uri.rstrip("/") + "/health", timeout=5).raise_for_status()
            except requests.RequestException as exc:
                report.problems.append(f"server not reachable: {type(exc).__name__}")
                report.ok = False
                return report
        try:
            self._client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001
            report.problems.append(f"cannot read the store: {str(exc).splitlines()[0][:200]}")
            report.ok = False
            return report
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            target = db if db.exists() else db.parent
            if not os.access(target, os.W_OK):
                report.problems.append(f"{target} is not writable")
        else:
            try:
                default = self._client.get_experiment("0")
                self._client.set_experiment_tag(default.experiment_id, "trackbook.health_check", str(now_ms()))
                report.details["write_checked"] = True
            except Exception as exc:  # noqa: BLE001
                report.problems.append(f"cannot write (tagging the Default experiment failed: {type(exc).__name__})")
        report.ok = not report.problems
        return report
