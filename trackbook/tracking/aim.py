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
from trackbook.tracking.base import HealthReport, Tracker, _Deleted


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

    def _send_create(self, p: dict) -> str:
        import aim

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
        self._meta(**{L.AIM_STATUS: C.RUNNING, L.AIM_PARENT_RUN_ID: p["parent_run_id"],
                      L.AIM_HEARTBEAT: p["start_ms"], L.AIM_LOCAL_ID: p.get("local_id")})
        return run.hash

    def _run(self):
        if self._aim_run is None:
            self._resume(self.run_id)
        return self._aim_run

    def _send_params(self, p: dict) -> None:
        run = self._run()
        run[L.AIM_PARAMS_KEY] = {**(run.get(L.AIM_PARAMS_KEY, None) or {}), **p}

    def _send_tags(self, p: dict) -> None:
        run = self._run()
        run[L.AIM_TAGS_KEY] = {**(run.get(L.AIM_TAGS_KEY, None) or {}), **p}

    def _send_metrics(self, p: list) -> None:
        run = self._run()
        for key, value, _ts, step in p:
            run.track(value, name=key, step=step)

    def _send_artifact(self, p: dict) -> None:
        run = self._run()
        if run.artifacts_uri is None:
            run.set_artifacts_uri((self.path / "artifacts").resolve().as_uri())
        source = Path(p["path"])
        prefix = f"{p['artifact_path'].strip('/')}/" if p["artifact_path"] else ""
        if source.is_dir():
            run.log_artifacts(str(source), name=f"{prefix}{source.name}", block=True)
        else:
            run.log_artifact(str(source), name=f"{prefix}{source.name}", block=True)

    def _send_heartbeat(self, p: dict) -> None:
        self._run()
        self._meta(**{L.AIM_HEARTBEAT: p["ms"]})

    def _send_terminate(self, p: dict) -> None:
        run = self._run()
        self._meta(**{L.AIM_STATUS: p["status"], L.AIM_END_MS: p["end_ms"]})
        run.close()
        self._aim_run = None
        _aim.index_pending_runs(_aim.open_repo(self.path))

    def _resume(self, run_id: str) -> None:
        import aim
        from aim.sdk.errors import MissingRunError

        try:
            self._aim_run = aim.Run(run_hash=run_id, repo=str(self.path), system_tracking_interval=None,
                                    capture_terminal_logs=False, log_system_params=False, force_resume=True)
        except MissingRunError as exc:
            raise _Deleted(run_id) from exc
        self.run_id = run_id

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
