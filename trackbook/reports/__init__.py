"""Reports: parameterized notebooks executed with papermill, exported to HTML with nbconvert.

Example:
    >>> data, path = tb.report("chain", run_id=final_run_id, output="chain.html")   # doctest: +SKIP

The templates (training, hpo_study, comparison, chain) ship inside the package, in
``trackbook/report_templates/`` (:data:`TEMPLATES`), and use only trackbook's public
API; open one to read or change it, or pass your own with ``template=``. One job per
module: ``_execute`` checks the parameters against the template's ``parameters`` cell
and runs it with papermill, ``_credentials`` keeps secrets out of the notebook,
``_export`` writes the HTML; ``display`` is what templates call to show things.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from trackbook.errors import ReportFailed, ReportParameterError
from trackbook.reports._credentials import environ, scrub_notebook, split_credentials
from trackbook.reports._execute import check_parameters, declared_parameters, execute
from trackbook.reports._export import recorded, to_html

#: The report templates, package data (a folder when trackbook is installed normally).
TEMPLATES = resources.files("trackbook") / "report_templates"
KINDS = {"training": "training.ipynb", "hpo": "hpo_study.ipynb", "hpo_study": "hpo_study.ipynb",
         "comparison": "comparison.ipynb", "chain": "chain.ipynb"}
FORMATS = ("html", "ipynb")


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

    Example:
        >>> data, path = tb.report("training", "run.html", run_id=run_id)   # doctest: +SKIP
        >>> data["final"]["eval/mean_reward"]                               # doctest: +SKIP

    Args:
        kind: ``training``, ``hpo`` (``hpo_study``), ``comparison`` or ``chain``.
        output: the file to write (default ``<kind>_report.html`` here).
        template: a notebook of your own instead of ``kind``'s (a cell tagged ``parameters``).
        format: ``html`` (a single offline file, code hidden unless ``show_code``) or
            ``ipynb`` (the executed notebook).
        progress: a progress bar on the terminal while cells run.
        timeout: seconds a cell may run.
        **parameters: the template's parameters (``store_uri``, ``run_id``, ``metrics``, ...;
            :func:`template_parameters` lists them).

    Returns:
        ``(data, path)``: what the template recorded with ``display.record(...)``, and the file written.

    Raises:
        ValueError: unknown kind or format, or a missing template file.
        ReportParameterError: a name the template does not declare, or a value that is not
            plain data; raised before any kernel starts.
        ReportFailed: a cell raised (template, cell, ename, evalue and traceback as
            attributes; the partial notebook is kept as ``<output>.failed.ipynb``).
    """
    import nbformat

    if format not in FORMATS:
        raise ValueError(f"format={format!r}: use 'html' or 'ipynb'.")
    with _template_file(kind, template) as source:
        check_parameters(source, parameters)
        output = Path(output or f"{kind or source.stem}_report.{format}").resolve()
        output.parent.mkdir(parents=True, exist_ok=True)
        parameters, secrets, env = split_credentials(parameters)
        with tempfile.TemporaryDirectory(prefix="trackbook-report-") as work, environ(env):
            executed = Path(work) / "executed.ipynb"
            execute(source, executed, parameters, secrets=secrets, kept=output.with_suffix(".failed.ipynb"),
                    progress=progress, timeout=timeout)
            nb = nbformat.read(executed, as_version=4)
    scrub_notebook(nb, secrets)
    data = recorded(nb)
    if format == "ipynb":
        nbformat.write(nb, output)
    else:
        output.write_text(to_html(nb, show_code=show_code), encoding="utf-8")
    return ReportResult(data, output)


def template_parameters(kind: str | None = None, *, template: str | os.PathLike | None = None) -> dict[str, str]:
    """The parameters a report template declares, with their defaults as written in it.

    Example:
        >>> list(tb.reports.template_parameters("chain"))    # doctest: +SKIP
        ['store_uri', 'run_id', 'experiment', 'metrics', 'goals', 'title']

    Raises:
        ValueError: unknown kind, or a missing template file.
    """
    with _template_file(kind, template) as source:
        return declared_parameters(source)


@contextlib.contextmanager
def _template_file(kind: str | None, template: str | os.PathLike | None) -> Iterator[Path]:
    """The template as a file papermill can open (package data extracted if it is zipped)."""
    if template is not None:
        source = Path(template)
        if not source.is_file():
            raise ValueError(f"Report template {source} does not exist.")
        yield source
        return
    if kind not in KINDS:
        raise ValueError(f"Unknown report kind {kind!r}; choose one of {sorted(set(KINDS))} or pass template=.")
    with resources.as_file(TEMPLATES / KINDS[kind]) as source:
        if not source.is_file():
            raise ValueError(f"Report template {source} is missing from this trackbook installation: "
                             f"reinstall it (pip install --force-reinstall trackbook).")
        yield source


__all__ = ["FORMATS", "KINDS", "TEMPLATES", "ReportFailed", "ReportParameterError", "ReportResult", "report",
           "template_parameters"]
