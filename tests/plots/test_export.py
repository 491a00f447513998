"""Static export through Debian's Chromium: real images, checked as images."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from tests.requirements import require

import trackbook as tb
from trackbook.plots import export



@pytest.fixture()
def chromium():
    """Skip (under CI=true: fail) where no Chromium export can find is installed."""
    import shutil

    require(any(shutil.which(n) for n in export.CANDIDATES) or Path(export.FALLBACK).is_file(),
            "Debian's chromium", "apt-get install chromium (bash scripts/dev test installs it as root)")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _fig(title: str) -> go.Figure:
    return go.Figure(go.Scatter(x=np.arange(20), y=np.arange(20) ** 0.5, name="reward"), layout={"title": title})


class _TwoFigures:  # the shape of a panel: figures as attributes
    def __init__(self) -> None:
        self.history_fig = go.FigureWidget(_fig("history"))
        self.parallel_fig = _fig("parallel")
        self.name = "not a figure"


def test_png_of_every_figure_of_a_panel(tmp_path: Path, chromium):
    paths = tb.plots.save_figure(_TwoFigures(), tmp_path / "study.png", width=640, height=400, scale=2)
    assert [p.name for p in paths] == ["study-history_fig.png", "study-parallel_fig.png"]
    for path in paths:
        assert png_size(path.read_bytes()) == (1280, 800)  # width x scale
        assert path.stat().st_size > 5_000  # drawn, not blank


def test_svg_and_pdf(tmp_path: Path, chromium):
    svg = export.to_image(_fig("svg <title>"), "svg", width=500, height=300)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.get("width") == "500" and root.get("height") == "300"
    assert any("scatterlayer" in (e.get("class") or "") for e in root.iter())  # the trace is drawn
    assert any(e.text == "svg <title>" for e in root.iter())  # the title, as written
    (path,) = tb.plots.save_figure(_fig("pdf"), tmp_path / "curve.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and b"/Type /Page" in data and data.rstrip().endswith(b"%%EOF")


def test_html_needs_no_browser(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRACKBOOK_CHROMIUM", str(tmp_path / "no-such-chrome"))
    (path,) = tb.plots.save_figure(_fig("html"), tmp_path / "curve.html")
    assert "plotly" in path.read_text()[:10_000].lower()


def test_no_browser_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRACKBOOK_CHROMIUM", str(tmp_path / "no-such-chrome"))
    with pytest.raises(tb.BrowserNotFound, match="TRACKBOOK_CHROMIUM=.*is not a file"):
        tb.plots.save_figure(_fig("x"), tmp_path / "x.png")
    monkeypatch.delenv("TRACKBOOK_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(export, "FALLBACK", str(tmp_path / "chromium"))
    with pytest.raises(tb.BrowserNotFound, match="apt-get install chromium.*HTML export"):
        tb.plots.save_figure(_fig("x"), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match="format='gif'"):
        tb.plots.save_figure(_fig("x"), tmp_path / "x.gif")
