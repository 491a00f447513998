"""The RL trading stack's tracking names over trackbook: change the imports, keep the script.

Thin adapters with the stack's class names, function names and signatures, each a few
lines over trackbook's own API (``tb.connect``, ``make_tracker``, ``tb.chain``,
``tb.plots``, ``tb.report``, ``load_config``, the Prometheus exporter). Where the stack's
calls are awaited (``await get_ml_tracker()``, ``await tracker.log_metric(...)``) these
are awaitable too; nothing here waits on anything, the awaits just return.

Example (the imports are all that changed)::

    from trackbook.compat import MLflowMetricConnector, MLflowLoggingCallback
    from trackbook.compat import get_ml_tracker, TrainingMetrics, ExperimentStatus
    from trackbook.compat import ConfigurationManager, ExperimentReporter

    connector = MLflowMetricConnector(experiment_name="stock_trading_rl_1H")
    runs = connector.get_run_chain(final_run_id)
    connector.generate_continuous_plot([r.info.run_id for r in runs], "evaluation/mean_reward",
                                       save_path="reward_progress.png")

Which store: an explicit URI, else the environment (``MLFLOW_TRACKING_URI``,
``ML_TRACKING_BACKEND``, ``AIM_REPO_PATH``, ``ML_STORAGE_PATH``), else
``sqlite:///mlflow.db`` (:func:`trackbook._uri.resolve_uri`). The stack's ``MLflowTracker``
read the environment first; trackbook lets an explicit argument win.

Nothing else in trackbook imports this module. README, "From the scripts you have",
maps every name and says what differs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from trackbook import columns as C
from trackbook import layout as L
from trackbook._uri import resolve_uri
from trackbook.tracking.prometheus import (  # noqa: F401 - the stack's helper functions, re-exported
    record_data_load_time,
    record_environment_steps,
    record_episode_metrics,
    record_loss_metrics,
    record_performance_metrics,
    record_training_complete,
    record_training_error,
    record_training_failed,
    record_training_iteration,
    record_training_start,
    start_metrics_server,
)

if TYPE_CHECKING:
    from trackbook.tracking.callback import MLflowLoggingCallback, TrackingCallback

_log = logging.getLogger("trackbook.compat")


def __getattr__(name: str) -> Any:
    # the callbacks import stable-baselines3 (torch): only when a script asks for them
    if name in ("MLflowLoggingCallback", "TrackingCallback"):
        from trackbook.tracking import callback

        return getattr(callback, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Awaitable:
    """``await x`` is ``x``: the stack awaits its factories; trackbook's are synchronous."""

    def __await__(self):
        return _itself(self).__await__()


async def _itself(value: Any) -> Any:
    return value


# ------------------------------------------------------------------ data models


class ExperimentStatus(StrEnum):
    """The stack's run statuses, valued as MLflow's (what trackbook's frames show).

    ``COMPLETED`` is MLflow's ``FINISHED`` and ``CANCELLED`` its ``KILLED``.
    """

    RUNNING = C.RUNNING
    COMPLETED = C.FINISHED
    FAILED = C.FAILED
    CANCELLED = C.KILLED
    PENDING = C.SCHEDULED

    @classmethod
    def of(cls, status: str) -> ExperimentStatus:
        """The member for an MLflow status (or a member's name)."""
        try:
            return cls(status)
        except ValueError:
            return cls[str(status).upper()]


class ArtifactType(StrEnum):
    """Kinds of artifact; the value is the artifact folder they are logged under."""

    MODEL = L.MODEL_DIR
    CHECKPOINT = L.CHECKPOINT_DIR
    CONFIG = "config"
    PLOT = "plots"
    REPORT = "reports"
    DATA = "data"
    OTHER = ""


class TrainingMetrics:
    """A point of training metrics: ``step`` and any named values (``loss``, ``reward``,
    ``episode_length``, ``accuracy``, ``win_rate``, ``sharpe_ratio``, ...), logged under
    those names at ``step``."""

    def __init__(self, step: int, loss: float | None = None, reward: float | None = None,
                 episode_length: float | None = None, accuracy: float | None = None, **extra: float) -> None:
        self.step = int(step)
        self.values = {k: v for k, v in {"loss": loss, "reward": reward, "episode_length": episode_length,
                                          "accuracy": accuracy, **extra}.items() if v is not None}

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, float]:
        return dict(self.values)

    def __repr__(self) -> str:
        return f"TrainingMetrics(step={self.step}, {', '.join(f'{k}={v}' for k, v in self.values.items())})"


@dataclass
class ExperimentSummary:
    """One run as the stack's repository describes it (an "experiment" there is a run)."""

    experiment_id: str
    name: str
    status: ExperimentStatus
    start_time: datetime | None = None
    duration: timedelta | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    experiment_name: str = ""


@dataclass
class ModelArtifact:
    name: str
    artifact_type: ArtifactType
    file_path: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricPoint:
    name: str
    value: float
    step: int
    timestamp: datetime | None = None


@dataclass
class ExperimentRun:
    """A run started by :meth:`MLTracker.create_run`; pass it back to the tracker's methods."""

    run_id: str | None
    experiment_name: str
    config: dict[str, Any]
    tracker: Any = field(repr=False, default=None)
    #: the highest step logged, where final metrics go (so they read as the last values)
    last_step: int = 0

    @property
    def info(self) -> SimpleNamespace:
        return SimpleNamespace(run_id=self.run_id, experiment_name=self.experiment_name)


@dataclass
class HealthResult(_Awaitable):
    """What :func:`health_check` found: ``is_healthy`` and the ``issues`` in words."""

    is_healthy: bool
    issues: list[str]
    backend: str
    uri: str

    def __bool__(self) -> bool:
        return self.is_healthy


# -------------------------------------------------------------- configuration

_settings: dict[str, Any] = {"uri": None, "experiment": None}


def configure_aim_backend(repo_path: str | Path = "./aim_logs", experiment_name: str | None = None) -> str:
    """Write and read an Aim repository at ``repo_path`` (created when first written).

    Returns:
        The store's URI (``aim:///abs/path``).
    """
    _settings["uri"] = f"aim://{Path(repo_path).expanduser().resolve()}"
    _settings["experiment"] = experiment_name
    return _settings["uri"]


def configure_mlflow_backend(tracking_uri: str | None = None, experiment_name: str | None = None) -> str:
    """Write and read an MLflow store (the URI, else the environment, else ``sqlite:///mlflow.db``)."""
    _settings["uri"] = resolve_uri(tracking_uri)
    _settings["experiment"] = experiment_name
    return _settings["uri"]


def _uri(explicit: Any = None) -> str:
    if isinstance(explicit, str) and explicit and "://" not in explicit and Path(explicit).is_dir() \
            and not (Path(explicit) / ".aim").is_dir():
        return f"file://{Path(explicit).resolve()}"  # the stack's "mlruns" folder: MLflow's file store
    return resolve_uri(explicit if explicit is not None else _settings["uri"])


def _experiment(name: str | None) -> str:
    from trackbook.tracking.trackers import default_experiment

    return default_experiment(name or _settings["experiment"])


def health_check(tracking_uri: str | None = None) -> HealthResult:
    """Whether the store can be reached and written (``health = await health_check()``)."""
    from trackbook.tracking.trackers import health_check as check

    report = check(_uri(tracking_uri))
    return HealthResult(bool(report.ok), list(report.problems), report.backend, report.uri)


# ------------------------------------------------------------- MLTracker


class MLTracker(_Awaitable):
    """Writes runs: ``run = await tracker.create_run(...)``, ``await tracker.log_metrics(run, ...)``."""

    def __init__(self, tracking_uri: str | None = None, experiment_name: str | None = None) -> None:
        self.uri = _uri(tracking_uri)
        self.experiment_name = experiment_name

    async def create_run(self, experiment_name: str | None = None, config: Mapping[str, Any] | None = None, *,
                         run_name: str | None = None, tags: Mapping[str, Any] | None = None) -> ExperimentRun:
        from trackbook.tracking.trackers import make_tracker

        tracker = make_tracker(self.uri)
        experiment = _experiment(experiment_name or self.experiment_name)
        config = dict(config or {})
        tracker.start_run(experiment, name=run_name, params=_flat(config), tags=dict(tags or {}))
        return ExperimentRun(tracker.run_id, experiment, config, tracker)

    async def log_metrics(self, run: ExperimentRun, metrics: TrainingMetrics | Mapping[str, float],
                          step: int | None = None) -> None:
        if isinstance(metrics, TrainingMetrics):
            values, at = metrics.to_dict(), metrics.step if step is None else step
        else:
            values, at = dict(metrics), step or 0
        run.last_step = max(run.last_step, int(at))
        run.tracker.log_metrics(values, int(at))

    async def log_metric(self, run: ExperimentRun, name: str, value: float, step: int = 0) -> None:
        run.last_step = max(run.last_step, int(step))
        run.tracker.log_metrics({name: value}, int(step))

    async def log_params(self, run: ExperimentRun, params: Mapping[str, Any]) -> None:
        run.tracker.log_params(_flat(params))

    async def log_artifact(self, run: ExperimentRun, path: str | Path | ModelArtifact,
                           artifact_type: ArtifactType = ArtifactType.OTHER) -> None:
        if isinstance(path, ModelArtifact):
            path, artifact_type = path.file_path, path.artifact_type
        run.tracker.log_artifact(path, ArtifactType(artifact_type).value or None)

    async def finish_run(self, run: ExperimentRun, status: ExperimentStatus | str = ExperimentStatus.COMPLETED,
                         final_metrics: Mapping[str, float] | None = None) -> None:
        run.tracker.end_run(ExperimentStatus.of(status).value, final_metrics=final_metrics, step=run.last_step)


def get_ml_tracker(tracking_uri: str | None = None) -> MLTracker:
    """The tracker (``tracker = await get_ml_tracker()``; plain calls work too)."""
    return MLTracker(tracking_uri)


@runtime_checkable
class TrackingBackend(Protocol):
    """The stack's backend shape, for type checks. trackbook's backends are
    ``trackbook.tracking.mlflow.MLflowTracker`` and ``trackbook.tracking.aim.AimTracker``
    (subclasses of ``Tracker``); a new one implements ``Tracker._send``, not this."""

    async def create_run(self, experiment_name: str, config: dict) -> ExperimentRun: ...


# ---------------------------------------------------- ExperimentRepository


class ExperimentRepository(_Awaitable):
    """Reads runs back as the stack's summaries (``repo = await get_experiment_repository()``)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        import trackbook as tb

        self.store = tb.connect(_uri(tracking_uri))

    async def list_experiments(self, status: ExperimentStatus | str | None = None,
                               experiment_name: str | None = None) -> list[ExperimentSummary]:
        wanted = None if status is None else ExperimentStatus.of(status).value
        runs = self.store.runs(experiment_name, status=wanted)
        return [_summary(row) for _, row in runs.iterrows()]

    async def get_experiment(self, experiment_id: str) -> ExperimentSummary:
        return _summary(self.store.run(experiment_id))

    async def get_experiment_metrics(self, experiment_id: str,
                                     metric_names: str | Sequence[str] | None = None) -> list[MetricPoint]:
        hist = self.store.history(experiment_id, metric_names)
        return [MetricPoint(str(m), float(v), int(s), t) for m, v, s, t in
                zip(hist[C.METRIC], hist[C.VALUE], hist[C.STEP], hist[C.TIMESTAMP], strict=True)]


def get_experiment_repository(tracking_uri: str | None = None) -> ExperimentRepository:
    """The repository (``repo = await get_experiment_repository()``; plain calls work too)."""
    return ExperimentRepository(tracking_uri)


def _summary(row: Any) -> ExperimentSummary:
    def prefixed(prefix: str) -> dict[str, Any]:
        return {k[len(prefix):]: v for k, v in row.items() if str(k).startswith(prefix) and _present(v)}

    duration = row.get(C.DURATION)
    start = row.get(C.START_TIME)
    return ExperimentSummary(
        experiment_id=str(row[C.RUN_ID]), name=str(row.get(C.NAME) or row[C.RUN_ID]),
        status=ExperimentStatus.of(str(row[C.STATUS])),
        start_time=start.to_pydatetime() if _present(start) and hasattr(start, "to_pydatetime") else None,
        duration=timedelta(seconds=float(duration)) if _present(duration) else None,
        final_metrics={k: float(v) for k, v in prefixed(C.METRICS_PREFIX).items()},
        config={k: str(v) for k, v in prefixed(C.PARAMS_PREFIX).items()},
        tags={k: str(v) for k, v in prefixed(C.TAGS_PREFIX).items()},
        experiment_name=str(row.get(C.EXPERIMENT) or ""),
    )


def _present(value: Any) -> bool:
    import pandas as pd

    return value is not None and not (isinstance(value, float) and value != value) and value is not pd.NaT


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    from trackbook.tracking.config import config_to_params

    try:
        from omegaconf import OmegaConf

        return config_to_params(OmegaConf.create(dict(config))) if config else {}
    except Exception:  # noqa: BLE001 - no omegaconf (train extra), or values it cannot hold: log them as text
        return {str(k): v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}


# ------------------------------------------------- MLflowMetricConnector


class _RunView:
    """A run with the shape of MLflow's ``Run``: ``run.info.run_id``, ``run.data.metrics``."""

    def __init__(self, row: Any) -> None:
        summary = _summary(row)
        self.info = SimpleNamespace(run_id=summary.experiment_id, run_name=summary.name,
                                    experiment_id=str(row.get(C.EXPERIMENT_ID) or ""), status=str(row[C.STATUS]),
                                    start_time=summary.start_time, end_time=row.get(C.END_TIME))
        self.data = SimpleNamespace(metrics=summary.final_metrics, params=summary.config, tags=summary.tags)

    def __repr__(self) -> str:
        return f"<Run {self.info.run_id} {self.info.run_name!r} {self.info.status}>"


class MLflowMetricConnector:
    """Enhancement chains of one experiment: the chain, a continuous plot, the report.

    Args:
        experiment_name: the experiment the chains live in.
        tracking_uri: the store (see the module's docs).
    """

    def __init__(self, experiment_name: str | None = None, tracking_uri: str | None = None) -> None:
        import trackbook as tb

        self.experiment_name = experiment_name
        self.uri = _uri(tracking_uri)
        self.store = tb.connect(self.uri)

    def get_run_chain(self, final_run_id: str) -> list[_RunView]:
        """The chain ending at ``final_run_id``, root first (``base_model_run_id`` tags)."""
        import trackbook as tb

        chain = tb.chain(self.store, final_run_id)
        return [_RunView(row) for _, row in chain.runs.iterrows()]

    def generate_continuous_plot(self, run_ids: Sequence[str], metric_name: str, title: str | None = None,
                                 save_path: str | Path | None = None, **kwargs: Any):
        """``metric_name`` across the runs on one timestep axis; saved when ``save_path`` is
        given (PNG, SVG, PDF through Chromium, or HTML). A reward metric the runs did not
        log is replaced by the reward metric they did (with a warning).

        Returns:
            The plotly figure.
        """
        import trackbook as tb
        from trackbook import plots

        run_ids = list(run_ids)
        if not run_ids:
            raise ValueError("generate_continuous_plot needs the run ids of a chain (get_run_chain(...)).")
        chain = tb.chain(self.store, run_ids[-1])
        runs = chain.runs[chain.runs[C.RUN_ID].isin(run_ids)]
        hist = chain.history()
        hist = hist[hist[C.RUN_ID].isin(run_ids)]
        metric = self._present_metric(metric_name, hist)
        fig = plots.chain_progress(hist[hist[C.METRIC] == metric], metric, chain_runs=runs,
                                   title=title or f"{metric} across the chain", **kwargs)
        if save_path is not None:
            plots.save_figure(fig, save_path)
        return fig

    def generate_enhancement_report(self, final_run_id: str, output_path: str | Path = "enhancement_report.html",
                                    metrics: Sequence[str] | None = None, **kwargs: Any) -> tuple[dict, str]:
        """The chain report (``trackbook report chain``): ``report_data, html_path``."""
        import trackbook as tb

        chain = tb.chain(self.store, final_run_id)
        names = set(chain.history()[C.METRIC].astype(str))
        chosen = [self._present_metric(m, None, names) for m in metrics] if metrics else \
            [L.reward_metric(names) or next(iter(sorted(names)), L.REWARD_METRICS[0])]
        data, path = tb.report("chain", output_path, store_uri=self.uri, run_id=final_run_id,
                               metrics=list(dict.fromkeys(chosen)), progress=False, **kwargs)
        return data, str(path)

    @staticmethod
    def _present_metric(metric: str, hist: Any, names: Iterable[str] | None = None) -> str:
        present = set(names) if names is not None else set(hist[C.METRIC].astype(str))
        if metric in present or metric not in L.REWARD_METRICS:
            return metric
        found = L.reward_metric(present)
        if found is None:
            return metric
        warnings.warn(f"The runs logged no {metric!r}; drawing their reward metric {found!r} instead.",
                      UserWarning, stacklevel=3)
        return found


# ------------------------------------------- configs, runs, logging, reports


class ConfigurationManager:
    """A YAML config with command-line overrides (``--model.learning_rate 0.005`` or
    ``model.learning_rate=0.005``), validated where trackbook uses it.

    Args:
        config_path: the YAML file.
        overrides: the overrides; None reads them from ``sys.argv`` (the dotted
            ``--section.key value`` and ``section.key=value`` items), as the stack did.
    """

    def __init__(self, config_path: str | Path, overrides: Sequence[str] | None = None) -> None:
        from trackbook.tracking.config import load_config

        self.config_path = Path(config_path)
        self.overrides = list(overrides) if overrides is not None else _argv_overrides(sys.argv[1:])
        self.config = load_config(self.config_path, self.overrides)
        #: every config this manager handed out, oldest first
        self.history = [self.config]

    def get_config(self):
        return self.config

    def save_config(self, path: str | Path) -> Path:
        from trackbook.tracking.config import config_to_yaml

        path = Path(path)
        path.write_text(config_to_yaml(self.config))
        return path


def _argv_overrides(argv: Sequence[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        item = argv[i]
        key = item[2:].partition("=")[0] if item.startswith("--") else item.partition("=")[0]
        if "." in key and (item.startswith("--") or "=" in item):
            out.append(item)
            if item.startswith("--") and "=" not in item and i + 1 < len(argv):
                out.append(argv[i + 1])
                i += 1
        i += 1
    return out


_current: list[Any] = []  # the run ExperimentOrganizer / start_mlflow_run opened (innermost last)


class ExperimentOrganizer:
    """Starts runs named and tagged from a config (``experiment.name``, ``experiment.tags``).

    Args:
        config: a config (``ConfigurationManager.get_config()``, a mapping, or None).
        tracking_uri: the store (default: ``experiment.tracking_uri``, then the environment).
    """

    def __init__(self, config: Any = None, tracking_uri: str | None = None) -> None:
        from trackbook.tracking.hpo import _plain  # one home for "OmegaConf as plain"

        self.config = config
        plain = _plain(config) if config is not None else {}
        experiment = plain.get("experiment") or {}
        self.experiment_name = _experiment(experiment.get("name"))
        self.tags = {str(k): str(v) for k, v in (experiment.get("tags") or {}).items()}
        self.uri = _uri(tracking_uri or experiment.get("tracking_uri"))

    @contextlib.contextmanager
    def start_run(self, run_name: str | None = None, *, parent_run_id: str | None = None,
                  nested: bool = False, tags: Mapping[str, Any] | None = None) -> Iterator[ExperimentRun]:
        """A run for the ``with`` block: FINISHED at its end, FAILED (KILLED on Ctrl+C) if it raised.
        ``nested=True`` makes it a child of the run open around it."""
        from trackbook.tracking.trackers import make_tracker

        if nested and parent_run_id is None and _current:
            parent_run_id = _current[-1].run_id
        tracker = make_tracker(self.uri)
        tracker.start_run(self.experiment_name, name=run_name, tags={**self.tags, **(tags or {})},
                          parent_run_id=parent_run_id)
        run = ExperimentRun(tracker.run_id, self.experiment_name, {}, tracker)
        _current.append(run)
        try:
            yield run
        except BaseException as exc:
            tracker.end_run(C.KILLED if isinstance(exc, KeyboardInterrupt) else C.FAILED)
            raise
        else:
            tracker.end_run(C.FINISHED)
        finally:
            _current.remove(run)


def _active_tracker() -> Any:
    if not _current:
        raise RuntimeError("No run is open: start one with ExperimentOrganizer(config).start_run() "
                           "or start_mlflow_run() first.")
    return _current[-1].tracker


class EnhancedMLflowLogger:
    """Logs into the run opened by :class:`ExperimentOrganizer` (or :func:`start_mlflow_run`)."""

    def log_config(self, config: Any) -> None:
        from trackbook.tracking.hpo import _plain

        tracker = _active_tracker()
        plain = _plain(config)
        tracker.log_params(_flat(plain))
        tracker.log_dict(plain, "config.json")

    def log_environment_details(self) -> None:
        from trackbook.tracking.environment import environment_info, environment_tags

        info = environment_info()
        tracker = _active_tracker()
        tracker.set_tags(environment_tags(info))
        tracker.log_dict(info, "environment.json")

    def log_model_summary(self, model: Any, filename: str = "model_architecture.txt") -> None:
        _active_tracker().log_text(str(model), filename)

    def log_training_history(self, history: Mapping[str, Sequence[float]]) -> None:
        """``{"loss": [...], "val_loss": [...]}``: value i at step i (the epoch)."""
        tracker = _active_tracker()
        length = max((len(v) for v in history.values()), default=0)
        for epoch in range(length):
            tracker.log_metrics({k: v[epoch] for k, v in history.items() if epoch < len(v)}, epoch)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        _active_tracker().log_metrics(dict(metrics), int(step))

    def log_params(self, params: Mapping[str, Any]) -> None:
        _active_tracker().log_params(_flat(params))


class ExperimentReporter:
    """The stack's reports, as trackbook's report templates (HTML, offline)."""

    def __init__(self, mlflow_tracking_uri: str | None = None) -> None:
        self.uri = _uri(mlflow_tracking_uri)

    def generate_training_report(self, run_id: str, output_path: str | Path = "reports/training_summary.html",
                                 **kwargs: Any) -> str:
        return self._report("training", output_path, run_id=run_id, **kwargs)

    def generate_hpo_report(self, parent_run_id: str, output_path: str | Path = "reports/hpo_study_summary.html",
                            **kwargs: Any) -> str:
        return self._report("hpo", output_path, parent_run_id=parent_run_id, **kwargs)

    def generate_model_comparison_report(self, run_ids: Sequence[str],
                                         output_path: str | Path = "reports/model_comparison.html",
                                         **kwargs: Any) -> str:
        return self._report("comparison", output_path, run_ids=list(run_ids), **kwargs)

    def _report(self, kind: str, output_path: str | Path, **parameters: Any) -> str:
        import trackbook as tb

        return str(tb.report(kind, output_path, store_uri=self.uri, progress=False, **parameters).path)


# ----------------------------------------------------- mlflow_utils helpers


def setup_mlflow(tracking_uri: str | None = None, experiment_name: str | None = None, *,
                 config_file: str | Path | None = None) -> str:
    """Where the helpers below write: ``tracking_uri`` (or ``mlflow_config.yaml``'s
    ``tracking_uri``/``default_experiment_name``), else the environment, else the default."""
    if config_file is not None:
        import yaml

        data = yaml.safe_load(Path(config_file).read_text()) or {}
        tracking_uri = tracking_uri or data.get("tracking_uri")
        experiment_name = experiment_name or data.get("default_experiment_name")
    uri = _uri(tracking_uri)
    _settings["uri"], _settings["experiment"] = uri, experiment_name or _settings["experiment"]
    return uri


def start_mlflow_run(run_name: str | None = None, *, experiment_name: str | None = None, nested: bool = False,
                     tags: Mapping[str, Any] | None = None) -> str | None:
    """Start a run (a child of the open one when ``nested``); returns its id."""
    from trackbook.tracking.trackers import make_tracker

    parent = _current[-1].run_id if nested and _current else None
    tracker = make_tracker(_uri())
    experiment = _experiment(experiment_name)
    tracker.start_run(experiment, name=run_name, tags=dict(tags or {}), parent_run_id=parent)
    _current.append(ExperimentRun(tracker.run_id, experiment, {}, tracker))
    return tracker.run_id


def log_params(params: Mapping[str, Any]) -> None:
    _active_tracker().log_params(_flat(params))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _active_tracker().log_metrics(dict(metrics), int(step or 0))


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> None:
    _active_tracker().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> None:
    tracker = _active_tracker()
    root = Path(local_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.parent.relative_to(root).as_posix()
        tracker.log_artifact(path, "/".join(x for x in (artifact_path, rel if rel != "." else None) if x) or None)


def log_model(model: Any, artifact_path: str = L.MODEL_DIR) -> None:
    _active_tracker().log_model(model, artifact_path)


def set_tags(tags: Mapping[str, Any]) -> None:
    _active_tracker().set_tags(dict(tags))


def end_mlflow_run(status: str = C.FINISHED) -> None:
    run = _current.pop() if _current else None
    if run is not None:
        run.tracker.end_run(ExperimentStatus.of(status).value)


__all__ = [
    "ArtifactType", "ConfigurationManager", "EnhancedMLflowLogger", "ExperimentOrganizer", "ExperimentReporter",
    "ExperimentRepository", "ExperimentRun", "ExperimentStatus", "ExperimentSummary", "HealthResult",
    "MLTracker", "MLflowLoggingCallback", "MLflowMetricConnector", "MetricPoint", "ModelArtifact",
    "TrackingBackend", "TrackingCallback", "TrainingMetrics", "configure_aim_backend", "configure_mlflow_backend",
    "end_mlflow_run", "get_experiment_repository", "get_ml_tracker", "health_check", "log_artifact",
    "log_artifacts", "log_metrics", "log_model", "log_params", "record_data_load_time", "record_environment_steps",
    "record_episode_metrics", "record_loss_metrics", "record_performance_metrics", "record_training_complete",
    "record_training_error", "record_training_failed", "record_training_iteration", "record_training_start",
    "set_tags", "setup_mlflow", "start_metrics_server", "start_mlflow_run",
]
