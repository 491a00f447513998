"""Aim backend of :class:`~trackbook.tracking.base.Tracker`.

Runs are laid out as the Aim store reads them (see :mod:`trackbook.columns`), and
each run is indexed when it ends, so a process that starts after this one sees it.
"""

from __future__ import annotations

import os
from pathlib import Path

from trackbook import _aim
from trackbook import columns as C
from trackbook import layout as L
from trackbook.tracking._outbox import Op
from trackbook.tracking.base import HealthReport, Tracker


class AimTracker(Tracker):
    """Writes runs to an Aim repository (``aim:///path``), created if missing."""

    backend = "aim"

    def __init__(self, uri: str, **kwargs) -> None:
        super().__init__(uri, **kwargs)
        self.path = _aim.aim_path(uri)
        self._aim_run = None

    def _meta(self, **changes) -> None:
        meta = dict(self._aim_run.get(L.AIM_TRACKBOOK_KEY, None) or {})
        meta.update(changes)
        self._aim_run[L.AIM_TRACKBOOK_KEY] = meta

    def _send(self, op: Op) -> None:
        import aim

        p = op.payload
        if op.kind == "create":
            self.path.mkdir(parents=True, exist_ok=True)
            _aim.open_repo(self.path, init=not (self.path / ".aim").is_dir())
            run = aim.Run(
                repo=str(self.path), experiment=p["experiment"], system_tracking_interval=None,
                capture_terminal_logs=False, log_system_params=False,
            )
            run.name = p["name"] or run.hash
            run[L.AIM_TAGS_KEY] = p["tags"]
            run[L.AIM_PARAMS_KEY] = {}
            self._aim_run = run
            self._meta(status=C.RUNNING, parent_run_id=p["parent_run_id"], heartbeat=p["start_ms"])
            self._created(run.hash)
            return
        run = self._aim_run
        if op.kind == "params":
            run[L.AIM_PARAMS_KEY] = {**(run.get(L.AIM_PARAMS_KEY, None) or {}), **p}
        elif op.kind == "tags":
            run[L.AIM_TAGS_KEY] = {**(run.get(L.AIM_TAGS_KEY, None) or {}), **p}
        elif op.kind == "metrics":
            for key, value, _ts, step in p:
                run.track(value, name=key, step=step)
        elif op.kind == "artifact":
            if run.artifacts_uri is None:
                run.set_artifacts_uri((self.path / "artifacts").resolve().as_uri())
            source = Path(p["path"])
            prefix = f"{p['artifact_path'].strip('/')}/" if p["artifact_path"] else ""
            if source.is_dir():
                run.log_artifacts(str(source), name=f"{prefix}{source.name}", block=True)
            else:
                run.log_artifact(str(source), name=f"{prefix}{source.name}", block=True)
        elif op.kind == "heartbeat":
            self._meta(heartbeat=p["ms"])
        elif op.kind == "terminate":
            self._meta(status=p["status"], end_ms=p["end_ms"])
            run.close()
            self._aim_run = None
            _aim.index_pending_runs(_aim.open_repo(self.path))
        else:  # pragma: no cover
            raise ValueError(f"unknown operation {op.kind!r}")

    def health_check(self) -> HealthReport:
        report = HealthReport(ok=True, backend=self.backend, uri=f"aim://{self.path}")
        target = self.path if self.path.exists() else self.path.parent
        if not target.exists():
            report.problems.append(f"{target} does not exist")
        elif not target.is_dir():
            report.problems.append(f"{target} is not a folder")
        elif not os.access(target, os.W_OK):
            report.problems.append(f"{target} is not writable")
        elif (self.path / ".aim").is_dir():
            try:
                _aim.open_repo(self.path)
            except Exception as exc:  # noqa: BLE001
                report.problems.append(f"cannot open the repository: {exc}")
        report.ok = not report.problems
        return report
