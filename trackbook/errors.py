"""Every error trackbook raises on purpose.

Each subclasses :class:`TrackbookError`, and each message says what was asked, what
was found, and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class TrackbookError(Exception):
    """Base class of every error trackbook raises on purpose."""


class UnsupportedStoreURI(TrackbookError, ValueError):
    """The URI names a kind of store trackbook cannot read."""


class StoreUnavailable(TrackbookError):
    """The store could not be reached or opened."""


class ExperimentNotFound(TrackbookError, LookupError):
    """No experiment has the requested name or id."""


class RunNotFound(TrackbookError, LookupError):
    """No run has the requested id.

    Attributes:
        run_ids: the ids that named no run (empty where the caller did not say).
    """

    def __init__(self, message: str, *, run_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.run_ids = list(run_ids or [])


class RunDeleted(TrackbookError, LookupError):
    """A journal holds writes for a run that was deleted from its store meanwhile.

    Attributes:
        local_id: the run's id in the journal; run_id: its id in the store;
        journal: the journal's folder; pending: writes not delivered.
    """

    def __init__(self, local_id: str, run_id: str, uri: str, journal: str, pending: int) -> None:
        self.local_id, self.run_id, self.uri, self.journal, self.pending = local_id, run_id, uri, journal, pending
        super().__init__(
            f"Run {run_id} (local id {local_id}) was deleted from {uri} after it was journaled: its {pending} "
            f"pending writes were not delivered, and nothing else was touched. To recreate it, restore the run "
            f"(`mlflow runs restore --run-id {run_id}`) and sync again; to drop them, "
            f"`trackbook sync --discard {local_id}` (the journal is {journal})."
        )


class InvalidRunId(TrackbookError, ValueError):
    """A value that should be a run id is not shaped like one."""


class InvalidFilter(TrackbookError, ValueError):
    """A runs filter expression could not be applied."""


class ChainCycle(TrackbookError):
    """Following ``base_model_run_id`` tags came back to a run already visited.

    Attributes:
        run_ids: the runs on the cycle, in the order they were walked.
    """

    def __init__(self, run_ids: list[str]) -> None:
        self.run_ids = list(run_ids)
        path = " -> ".join(self.run_ids)
        super().__init__(
            f"Enhancement chain has a cycle: {path}. Fix the 'base_model_run_id' tag of "
            f"one of these runs (e.g. `mlflow.MlflowClient().delete_tag(run_id, "
            f"'base_model_run_id')`)."
        )


class StudyObjectiveUnknown(TrackbookError, ValueError):
    """A study's objective is named nowhere and no one metric is shared by its finished trials."""


class ConfigError(TrackbookError, ValueError):
    """An experiment config is missing, malformed, or has a bad key or value."""


class PortInUse(TrackbookError, OSError):
    """A server's port (the Prometheus exporter's, say) is already taken."""


class MetricNameCollision(TrackbookError, ValueError):
    """Two logged metric names map to one Prometheus name."""


class ReportParameterError(TrackbookError, ValueError):
    """A report was given a parameter its template does not declare, or a value that is not plain data."""


class ReportFailed(TrackbookError):
    """A cell of a report's notebook raised; the partial notebook is kept.

    Like papermill's ``PapermillExecutionError``, what went wrong is kept as attributes
    (secrets in the store URI already scrubbed from ``evalue`` and ``traceback``).

    Attributes:
        template: the template notebook that was executed.
        cell_index: papermill's index of the failing cell in the executed notebook (the
            injected-parameters cell counts; the red banners papermill adds to the kept
            notebook do not).
        exec_count: its execution count, the ``[n]`` shown beside it in the kept notebook.
        source: the failing cell's code.
        ename: the exception's class name (``RunNotFound``).
        evalue: the exception's message.
        traceback: the traceback lines as the kernel reported them (ANSI colours included).
        notebook: the partial notebook kept beside the output (``<output>.failed.ipynb``),
            or None when the kernel died before writing one.
    """

    def __init__(self, template: Path, *, cell_index: int, exec_count: int | None, source: str, ename: str,
                 evalue: str, traceback: list[str], notebook: Path | None) -> None:
        self.template = Path(template)
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.source = source
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        self.notebook = notebook
        kept = (f"The partial notebook is kept at {notebook}; open it to see the traceback." if notebook
                else "No partial notebook was written.")
        super().__init__(f"Report template {self.template.name} failed in cell "
                         f"{exec_count if exec_count is not None else cell_index}: {ename}: {evalue}. {kept}")


class ReadOnlyStore(UnsupportedStoreURI):
    """A writer was given a store trackbook only reads (a folder of TensorBoard event files)."""


class BrowserNotFound(TrackbookError, RuntimeError):
    """A static image (PNG, SVG, PDF) was asked for and no Chromium is there to draw it."""
