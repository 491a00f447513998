"""Static images (PNG, SVG, PDF) of figures and panels, drawn by a headless Chromium.

plotly draws a figure in a browser; trackbook opens Debian's Chromium (or the browser
``$TRACKBOOK_CHROMIUM`` names) through Playwright's ``executable_path``, so nothing is
downloaded: no ``playwright install``, no kaleido-fetched Chrome. PNG and SVG are
plotly's own ``toImage``; PDF is Chromium's print of the figure at its size (vector).
HTML needs no browser (``fig.write_html``, or a ``.html`` path here).

Example:
    >>> tb.plots.save_figure(fig, "reward.png")                  # doctest: +SKIP
    >>> tb.plots.save_figure(fig, "reward.pdf", width=900, height=500)   # doctest: +SKIP
    >>> tb.plots.save_figure(study_panel, "study.svg")           # doctest: +SKIP - one file per figure
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trackbook.errors import BrowserNotFound

#: Formats a browser draws; ``html`` is written without one.
FORMATS = ("png", "svg", "pdf")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
DEFAULT_WIDTH, DEFAULT_HEIGHT = 1000, 600
#: Where Debian's chromium package puts the browser (looked at last).
FALLBACK = "/usr/bin/chromium"


def find_browser() -> str:
    """The Chromium that draws static images: ``$TRACKBOOK_CHROMIUM``, else the first of
    :data:`CANDIDATES` on PATH, else :data:`FALLBACK` (``/usr/bin/chromium``).

    Raises:
        BrowserNotFound: none of them exists.
    """
    named = os.environ.get("TRACKBOOK_CHROMIUM")
    if named:
        if Path(named).is_file():
            return named
        raise BrowserNotFound(
            f"TRACKBOOK_CHROMIUM={named!r} is not a file. Point it at a Chromium or Chrome executable, "
            f"or unset it to use Debian's chromium (apt-get install chromium).")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if Path(FALLBACK).is_file():
        return FALLBACK
    raise BrowserNotFound(
        "Static export (PNG, SVG, PDF) needs a Chromium browser and found none (looked for "
        f"$TRACKBOOK_CHROMIUM, {', '.join(CANDIDATES)} on PATH, {FALLBACK}). Install one "
        "(apt-get install chromium) or set TRACKBOOK_CHROMIUM=/path/to/chrome; "
        "HTML export (a .html path, fig.write_html) needs no browser.")


@contextmanager
def _page() -> Iterator[Any]:
    executable = find_browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserNotFound(
            "Static export drives Chromium through Playwright, which is not installed: "
            "pip install 'trackbook[export]' (or pip install playwright; no `playwright install` needed, "
            f"trackbook uses {executable})."
        ) from exc
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=_ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001 - Playwright raises its own Error types
            raise BrowserNotFound(f"Chromium at {executable} did not start: {str(exc).splitlines()[0]}. "
                                  f"Set TRACKBOOK_CHROMIUM to a working Chromium or Chrome.") from exc
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_()  # nothing leaves the machine
                       if route.request.url.startswith(("about:", "data:")) else route.abort())
            page.set_content("<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
                             "<body style='margin:0'><div id='fig'></div></body></html>")
            from plotly.offline import get_plotlyjs

            page.add_script_tag(content=get_plotlyjs())
            yield page
        finally:
            browser.close()


def figures_of(obj: Any) -> dict[str, Any]:
    """The plotly figures ``obj`` holds: itself if it is one, else a panel's figure
    attributes (``figure``, ``history_fig``, ...) by name."""
    from plotly.basedatatypes import BaseFigure

    if isinstance(obj, BaseFigure):
        return {"": obj}
    found = {name: value for name, value in vars(obj).items() if isinstance(value, BaseFigure)} \
        if hasattr(obj, "__dict__") else {}
    if not found:
        raise TypeError(f"{type(obj).__name__} is neither a plotly figure nor a panel holding figures.")
    return found


def to_image(fig: Any, format: str = "png", *, width: int | None = None, height: int | None = None,
             scale: float = 1.0) -> bytes:
    """One figure as PNG, SVG or PDF bytes.

    Raises:
        BrowserNotFound: no Chromium (or no Playwright) to draw with.
        ValueError: a format other than png, svg, pdf.
    """
    return _draw([fig], format, width=width, height=height, scale=scale)[0]


def save_figure(obj: Any, path: str | Path, *, format: str | None = None, width: int | None = None,
                height: int | None = None, scale: float = 1.0) -> list[Path]:
    """Write a figure, or every figure of a panel, as PNG, SVG, PDF or HTML.

    Args:
        obj: a plotly figure (``go.Figure``, ``FigureWidget``) or a panel.
        path: the file; a panel with several figures writes ``<stem>-<figure>.<suffix>`` each.
        format: png, svg, pdf or html (default: the path's suffix).
        width, height: pixels (default: the figure's layout size, else 1000 x 600).
        scale: PNG pixel density (2 for sharp images on high-DPI screens).

    Returns:
        The paths written.

    Raises:
        BrowserNotFound: a static format and no Chromium to draw with.
        ValueError: an unknown format.
    """
    path = Path(path)
    kind = (format or path.suffix.lstrip(".") or "png").lower()
    if kind not in (*FORMATS, "html"):
        raise ValueError(f"format={kind!r}: use one of {', '.join(FORMATS)} or html.")
    figures = figures_of(obj)
    targets = [path if len(figures) == 1 else path.with_name(f"{path.stem}-{name}{path.suffix}") for name in figures]
    if kind == "html":
        for target, fig in zip(targets, figures.values(), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            fig.write_html(str(target), include_plotlyjs=True)
        return targets
    images = _draw(list(figures.values()), kind, width=width, height=height, scale=scale)
    for target, data in zip(targets, images, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return targets


def _draw(figs: list[Any], kind: str, *, width: int | None, height: int | None, scale: float) -> list[bytes]:
    if kind not in FORMATS:
        raise ValueError(f"format={kind!r}: use one of {', '.join(FORMATS)}.")
    out = []
    with _page() as page:
        for fig in figs:
            spec = json.loads(fig.to_json())  # plotly's encoder: numpy arrays, dates
            layout = spec.get("layout", {})
            w = int(width or layout.get("width") or DEFAULT_WIDTH)
            h = int(height or layout.get("height") or DEFAULT_HEIGHT)
            if kind == "pdf":
                page.set_viewport_size({"width": w, "height": h})
                page.evaluate("""([data, layout, w, h]) => Plotly.newPlot('fig', data, Object.assign({}, layout,
                                    {width: w, height: h}), {staticPlot: true})""", [spec.get("data", []), layout, w, h])
                out.append(page.pdf(width=f"{w}px", height=f"{h}px", print_background=True, page_ranges="1"))
                continue
            url = page.evaluate("""([data, layout, kind, w, h, s]) => Plotly.toImage({data: data, layout: layout},
                                      {format: kind, width: w, height: h, scale: s})""",
                                [spec.get("data", []), layout, kind, w, h, scale])
            head, _, body = url.partition(",")
            out.append(base64.b64decode(body) if head.endswith(";base64") else urllib.parse.unquote(body).encode())
    return out


__all__ = ["BrowserNotFound", "figures_of", "find_browser", "save_figure", "to_image"]
