"""Export an executed report: its recorded data for the caller, one offline HTML file for readers."""

from __future__ import annotations

import re
from typing import Any

from trackbook.reports.display import DATA_MIME


def recorded(nb: Any) -> dict[str, Any]:
    """What the notebook recorded with ``display.record(...)``, merged in cell order."""
    data: dict[str, Any] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if DATA_MIME in out.get("data", {}):
                data.update(out["data"][DATA_MIME])
    return data


def to_html(nb: Any, *, show_code: bool) -> str:
    """nbconvert's lab template, prompts and (unless ``show_code``) code hidden, nothing fetched from a CDN."""
    from nbconvert import HTMLExporter

    for cell in nb.cells:  # the recorded data is for tb.report's caller, not for readers
        cell["outputs"] = [o for o in cell.get("outputs", []) if DATA_MIME not in o.get("data", {})]
    exporter = HTMLExporter(template_name="lab", exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    # One offline file: drop what nbconvert's template would fetch from a CDN (require.js, MathJax).
    return re.sub(r'<script[^>]+src="https?://[^"]+"[^>]*>\s*</script>', "", body)
