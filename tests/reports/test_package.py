"""The package as users get it: a wheel built with pip holds the templates and dashboards, and reports
render from an installed wheel in a new virtual environment, away from this source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.browser import chromium_page

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "trackbook"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the working tree (building in place would leave build/ in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "trackbook", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # setuptools is already here: no build isolation, so nothing is downloaded
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"),
                 str(src)])
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (work / "dist").glob("trackbook-*.whl")
    return built


def test_the_wheel_holds_the_templates_and_dashboards(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("report_templates", "dashboards"):
        files = sorted(p.name for p in (PACKAGE / folder).iterdir() if p.is_file())
        assert files, folder
        assert {f"trackbook/{folder}/{f}" for f in files} <= names, folder
    assert len([n for n in names if n.endswith(".ipynb")]) == 4
    metadata = zipfile.ZipFile(wheel).read("trackbook-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()  # the SPDX form setuptools asks for


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with only the wheel installed in it.

    Its dependencies come from this interpreter's site-packages through a ``.pth`` line
    (not downloaded; ``--system-site-packages`` would give the base interpreter's, not this
    environment's); that adds the folder to ``sys.path`` without running its own ``.pth``
    files, so the editable install there, which points at a checkout, stays off.
    """
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    done = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    assert done.returncode == 0, done.stderr
    python = env_dir / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                 str(wheel)])
    assert done.returncode == 0, done.stdout + done.stderr
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                   .stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    # nbconvert's HTML templates are data files under its environment's prefix, where installing it would put them
    (env_dir / "share" / "jupyter").mkdir(parents=True)
    (env_dir / "share" / "jupyter" / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    return env_dir


def _outside_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


PROBE = """
import json, sys
import trackbook as tb
from pathlib import Path
ids = json.loads(sys.argv[2])
data, path = tb.report("chain", "chain.html", store_uri=sys.argv[1], run_id=ids["next"], metrics=["train/loss"],
                       progress=False)
import nbformat
nb = nbformat.v4.new_notebook()
cell = nbformat.v4.new_code_cell("import trackbook, sys\\nfrom trackbook.reports import display as rd\\n"
                                 "rd.record(trackbook=trackbook.__file__, python=sys.executable)")
nb.cells = [cell]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, "probe.ipynb")
kernel, _ = tb.report(template="probe.ipynb", output="probe.html", progress=False)
print(json.dumps({"here": tb.__file__, "templates": str(tb.reports.TEMPLATES), "kernel": kernel,
                  "changes": data["changes"], "html": str(path)}))
"""


def test_reports_render_from_the_installed_wheel(venv: Path, small_store, tmp_path: Path):
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    installed = site / "trackbook"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _outside_env()
    # the installed console script: the training report kept as a notebook, to see which template ran
    done = _run([str(venv / "bin" / "trackbook"), "report", "training", "--store", small_store["uri"], "--run-id",
                 small_store["ids"]["base"], "--format", "ipynb", "-o", "training.ipynb", "--no-progress"],
                cwd=outside, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(outside / "training.ipynb")
    nb = nbformat.read(outside / "training.ipynb", as_version=4)
    assert nb.metadata["papermill"]["input_path"] == str(installed / "report_templates" / "training.ipynb")
    assert "Training report: base" in json.dumps([c.get("outputs") for c in nb.cells])

    # the Python API, and a kernel that imports the installed package too
    done = _run([str(venv / "bin" / "python"), "-c", PROBE, small_store["uri"], json.dumps(small_store["ids"])],
                cwd=outside, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["here"] == str(installed / "__init__.py")
    assert seen["templates"] == str(installed / "report_templates")
    assert seen["kernel"] == {"trackbook": str(installed / "__init__.py"), "python": str(venv / "bin" / "python")}
    assert seen["changes"] == {"1:train/loss": "better"}
    with chromium_page() as page:
        page.goto(Path(seen["html"]).as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert "Enhancement chain: base → next" in page.inner_text("body")
        assert page.console_errors == []

    # a refused report exits non-zero from the installed command too, before any kernel starts
    done = _run([str(venv / "bin" / "trackbook"), "report", "training", "-p", "stor_uri=x", "--run-id", "r",
                 "-o", "typo.html"], cwd=outside, env=env)
    assert done.returncode == 2 and "did you mean 'store_uri'" in done.stderr, done.stderr
    assert not (outside / "typo.html").exists()
