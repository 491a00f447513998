"""Execute a report template with papermill, after checking its parameters against what it declares.

Nothing reaches a kernel until every parameter is a name the template's ``parameters``
cell declares (papermill's ``inspect_notebook`` reads them) and a plain value papermill
writes as a literal, so a misspelt name fails at once instead of the template quietly
using its default, and nothing a run name or tag holds can execute.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from trackbook.errors import ReportFailed, ReportParameterError
from trackbook.reports._credentials import scrub, scrub_file

#: A kernel of the current environment: jupyter_client runs the ``python3`` spec with this interpreter.
KERNEL = "python3"
_PLAIN = (str, int, float, bool, type(None))


def declared_parameters(template: Path) -> dict[str, str]:
    """``{name: default as written}`` of the template's cell tagged ``parameters``, in order."""
    import papermill as pm

    return {name: spec["default"] for name, spec in pm.inspect_notebook(str(template)).items()}


def check_parameters(template: Path, parameters: dict[str, Any]) -> None:
    """Refuse names the template does not declare and values that are not plain data.

    Raises:
        ReportParameterError: naming the parameter, and for an unknown name the template's parameters.
    """
    for name, value in parameters.items():
        if not name.isidentifier() or name.startswith("_"):
            raise ReportParameterError(f"Report parameter name {name!r} is not a plain identifier.")
        _check_value(name, value)
    if not parameters:
        return
    declared = declared_parameters(template)
    if not declared:
        raise ReportParameterError(
            f"Report template {template.name} has no cell tagged 'parameters', so it takes no "
            f"{', '.join(sorted(parameters))}: tag the cell that sets its parameters 'parameters' "
            f"(JupyterLab: the property inspector's cell tags).")
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        hints = [f"{name!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            name, declared, n=1)) else "") for name in unknown]
        raise ReportParameterError(
            f"Report template {template.name} has no parameter {', '.join(hints)}; its parameters are "
            f"{', '.join(declared)}. Nothing was run.")


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
                raise ReportParameterError(f"Report parameter {name!r} has a non-string key {k!r}.")
            _check_value(name, v)
        return
    raise ReportParameterError(
        f"Report parameter {name!r} is a {type(value).__name__}; parameters are plain data "
        f"(str, int, float, bool, None, lists and dicts of them). Pass ids and names, not objects."
    )


def execute(template: Path, executed: Path, parameters: dict[str, Any], *, secrets: list[str], kept: Path,
            progress: bool, timeout: float) -> None:
    """Run ``template`` into ``executed`` on a kernel of this environment.

    Raises:
        ReportFailed: a cell raised; the partial notebook, scrubbed, is written to ``kept``.
    """
    import papermill as pm
    from traitlets.config import Config

    # CurveZMQ keys for the kernel (where its kernelspec supports them, as ipykernel's does): its
    # traffic is encrypted, so it does not warn on every report that it runs over plain TCP.
    encrypted = Config({"KernelManager": {"transport_encryption": "auto"}})
    try:
        pm.execute_notebook(str(template), str(executed), parameters=parameters, progress_bar=progress,
                            execution_timeout=timeout, cwd=os.getcwd(), kernel_name=KERNEL, config=encrypted)
    except pm.PapermillExecutionError as exc:
        wrote = scrub_file(executed, kept, secrets)
        raise ReportFailed(
            template, cell_index=exc.cell_index, exec_count=exc.exec_count, source=scrub(exc.source, secrets),
            ename=exc.ename, evalue=scrub(str(exc.evalue), secrets),
            traceback=[scrub(line, secrets) for line in exc.traceback], notebook=kept if wrote else None,
        ) from None
