"""Reports: parameterized notebooks executed with papermill, exported to HTML with nbconvert.

Example:
    >>> data, path = tb.report("chain", run_id=final_run_id, output="chain.html")   # doctest: +SKIP

The templates in ``report_templates/`` (training, hpo_study, comparison, chain) use only
trackbook's public API; open one to read or change it, or pass your own with
``template=``. Parameters are checked before anything runs: names must be identifiers
and values plain data (str, int, float, bool, None, lists and dicts of them), so
nothing a run name or tag holds can execute in the kernel. Credentials in the store
URI travel to the kernel in environment variables, never in the notebook, and are
scrubbed from every output; every name, tag and param is escaped in the HTML.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from trackbook.errors import TrackbookError
from trackbook.reports.display import DATA_MIME

TEMPLATES = Path(__file__).resolve().parents[2] / "report_templates"
KINDS = {"training": "training.ipynb", "hpo": "hpo_study.ipynb", "hpo_study": "hpo_study.ipynb",
         "comparison": "comparison.ipynb", "chain": "chain.ipynb"}
#: A kernel of the current environment: jupyter_client runs the ``python3`` spec with this interpreter.
KERNEL = "python3"
_SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN")


class ReportFailed(TrackbookError):
    """A report's notebook raised; the partial notebook is kept at ``notebook``."""

    def __init__(self, message: str, notebook: Path | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook


class ReportResult(NamedTuple):
    """``data, path = tb.report(...)``: the report's key data and the file written."""

    data: dict[str, Any]
    path: Path


def report(
    kind: str | None = None,
    output: str | os.PathLike | None = None,
    *,
    template: str | os.PathLike | None = None,
    format: str = "html",
    show_code: bool = False,
    progress: bool = True,
    timeout: float = 600,
    **parameters: Any,
) -> ReportResult:
    """Execute a report template with ``parameters`` and write it as HTML (or ipynb).

    Args:
        kind: ``training``, ``hpo`` (``hpo_study``), ``comparison`` or ``chain``.
        output: the file to write (default ``<kind>_report.html`` here).
        template: a notebook of your own instead of ``kind``'s (a cell tagged ``parameters``).
        format: ``html`` (a single offline file, code hidden unless ``show_code``) or
            ``ipynb`` (the executed notebook).
        progress: a progress bar on the terminal while cells run.
        timeout: seconds a cell may run.
        **parameters: the template's parameters (``store_uri``, ``run_id``, ``metrics``, ...).

    Raises:
        ValueError: unknown kind or format, or a parameter that is not plain data.
        ReportFailed: a cell raised (the message names the template, the cell and the error).
    """
    import nbformat
    import papermill as pm

    source = Path(template) if template else _template_of(kind)
    if not source.is_file():
        raise ValueError(f"Report template {source} does not exist.")
    if format not in ("html", "ipynb"):
        raise ValueError(f"format={format!r}: use 'html' or 'ipynb'.")
    _check_parameters(parameters)
    output = Path(output or f"{kind or source.stem}_report.{format}").resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    parameters, secrets, env = _split_credentials(parameters)
    with tempfile.TemporaryDirectory(prefix="trackbook-report-") as work, _environ(env):
        executed = Path(work) / "executed.ipynb"
        try:
            pm.execute_notebook(str(source), str(executed), parameters=parameters, progress_bar=progress,
                                execution_timeout=timeout, cwd=os.getcwd(), kernel_name=KERNEL)
        except pm.PapermillExecutionError as exc:
            kept = output.with_suffix(".failed.ipynb")
            _scrub_file(executed, kept, secrets)
            raise ReportFailed(
                f"Report template {source.name} failed in cell {exc.exec_count or exc.cell_index}: "
                f"{exc.ename}: {_scrub(str(exc.evalue), secrets)}. The partial notebook is kept at {kept}.",
                kept,
            ) from None
        nb = nbformat.read(executed, as_version=4)
    _scrub_notebook(nb, secrets)
    data = _recorded(nb)
    if format == "ipynb":
        nbformat.write(nb, output)
    else:
        output.write_text(_to_html(nb, show_code), encoding="utf-8")
    return ReportResult(data, output)


def _template_of(kind: str | None) -> Path:
    if kind not in KINDS:
        raise ValueError(f"Unknown report kind {kind!r}; choose one of {sorted(set(KINDS))} or pass template=.")
    return TEMPLATES / KINDS[kind]


_PLAIN = (str, int, float, bool, type(None))


def _check_parameters(parameters: dict[str, Any]) -> None:
    for name, value in parameters.items():
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"Report parameter name {name!r} is not a plain identifier.")
        _check_value(name, value)


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_value(name, v)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"Report parameter {name!r} has a non-string key {k!r}.")
            _check_value(name, v)
        return
    raise ValueError(
        f"Report parameter {name!r} is a {type(value).__name__}; parameters are plain data "
        f"(str, int, float, bool, None, lists and dicts of them). Pass ids and names, not objects."
    )


def _split_credentials(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Move user:password out of ``store_uri`` into MLflow's environment variables."""
    secrets = [os.environ[v] for v in _SECRET_ENV if os.environ.get(v)]
    env: dict[str, str] = {}
    uri = parameters.get("store_uri")
    if isinstance(uri, str) and "@" in uri:
        parts = urlsplit(uri)
        if parts.password or parts.username:
            host = parts.hostname or ""
            netloc = host + (f":{parts.port}" if parts.port else "")
            parameters = {**parameters, "store_uri": urlunsplit(parts._replace(netloc=netloc))}
            if parts.scheme.startswith("http"):
                env = {"MLFLOW_TRACKING_USERNAME": unquote(parts.username or ""),
                       "MLFLOW_TRACKING_PASSWORD": unquote(parts.password or "")}
            else:  # a database URI keeps its credentials in a variable the kernel reads back
                env = {"TRACKBOOK_REPORT_STORE_URI": uri}
                parameters["store_uri"] = "env:TRACKBOOK_REPORT_STORE_URI"
            secrets += [s for s in (parts.password, unquote(parts.password or ""), uri) if s]
    for key in ("token", "access_token", "password"):
        if isinstance(uri, str) and re.search(rf"[?&]{key}=([^&]+)", uri):
            raise ValueError("Put tokens in MLFLOW_TRACKING_TOKEN, not in the store URI's query string.")
    return parameters, secrets, env


@contextmanager
def _environ(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _scrub_notebook(nb: Any, secrets: list[str]) -> None:
    if not secrets:
        return
    for cell in nb.cells:
        cell.source = _scrub(cell.source, secrets)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _scrub(out["text"], secrets)
            if "traceback" in out:
                out["traceback"] = [_scrub(t, secrets) for t in out["traceback"]]
            if "evalue" in out:
                out["evalue"] = _scrub(out["evalue"], secrets)
            for mime, value in out.get("data", {}).items():
                out["data"][mime] = (_scrub(value, secrets) if isinstance(value, str)
                                     else json.loads(_scrub(json.dumps(value), secrets)))


def _scrub_file(src: Path, dst: Path, secrets: list[str]) -> None:
    import nbformat

    if src.is_file():
        nb = nbformat.read(src, as_version=4)
        _scrub_notebook(nb, secrets)
        nbformat.write(nb, dst)


def _recorded(nb: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if DATA_MIME in out.get("data", {}):
                data.update(out["data"][DATA_MIME])
    return data


def _to_html(nb: Any, show_code: bool) -> str:
    from nbconvert import HTMLExporter

    for cell in nb.cells:  # the recorded data is for tb.report's caller, not for readers
        cell["outputs"] = [o for o in cell.get("outputs", []) if DATA_MIME not in o.get("data", {})]
    exporter = HTMLExporter(template_name="lab", exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    # One offline file: drop what nbconvert's template would fetch from a CDN (require.js, MathJax).
    body = re.sub(r'<script[^>]+src="https?://[^"]+"[^>]*>\s*</script>', "", body)
    return body


__all__ = ["KINDS", "ReportFailed", "ReportResult", "report"]
