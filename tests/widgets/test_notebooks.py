"""The example notebooks run top to bottom (papermill, a real kernel), and 01 works in a
real JupyterLab driven by Playwright in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from tests.browser import chromium_page
from trackbook.servers import free_port, stop, wait_http

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@contextlib.contextmanager
def _shot_on_failure(holder: list, folder: Path):
    try:
        yield
    except Exception:
        if holder:
            holder[0].screenshot(path=str(folder / "failure.png"))
        raise


@pytest.fixture()
def fixture_copy(fixture_dir, tmp_path: Path) -> str:
    shutil.copyfile(fixture_dir / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _run(name: str, tmp_path: Path, **parameters) -> nbformat.NotebookNode:
    out = tmp_path / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, progress_bar=False, cwd=str(tmp_path),
                        kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return nb


def _mimes(nb) -> set[str]:
    return {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}


def test_01_explore_runs(tmp_path: Path, fixture_copy):
    nb = _run("01_explore_runs.ipynb", tmp_path, store_uri=fixture_copy)
    assert "application/vnd.jupyter.widget-view+json" in _mimes(nb)  # the panels
    assert "application/vnd.plotly.v1+json" in _mimes(nb)


def test_02_train_in_notebook(tmp_path: Path):
    nb = _run("02_train_in_notebook.ipynb", tmp_path, store_uri=f"sqlite:///{tmp_path / 'nb.db'}", timesteps=2048,
              n_trials=2)
    import trackbook as tb

    store = tb.connect(f"sqlite:///{tmp_path / 'nb.db'}")
    assert len(tb.chain_tree(store, "notebook-ppo")) == 2
    assert tb.study_list(store, "notebook-ppo-hpo")["n_trials"].tolist() == [2]
    assert "application/vnd.jupyter.widget-view+json" in _mimes(nb)


def test_03_chains_and_studies(tmp_path: Path, fixture_copy):
    nb = _run("03_chains_and_studies.ipynb", tmp_path, store_uri=fixture_copy)
    assert "application/vnd.plotly.v1+json" in _mimes(nb)


def test_jupyterlab_renders_the_panels_and_a_filter_changes_the_table(tmp_path: Path, fixture_copy):
    shutil.copyfile(NOTEBOOKS / "01_explore_runs.ipynb", tmp_path / "01_explore_runs.ipynb")
    nb = nbformat.read(tmp_path / "01_explore_runs.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f'store_uri = "{fixture_copy}"\nexperiment = "ppo-cartpole"'
    nbformat.write(nb, tmp_path / "01_explore_runs.ipynb")
    token, port = secrets.token_hex(16), free_port()
    log = tmp_path / "lab.log"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    with log.open("w") as out:
        lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                                f"--IdentityProvider.token={token}", "--ServerApp.root_dir=" + str(tmp_path),
                                "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                                "--allow-root"], stdout=out, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=120, proc=lab, log=log)
        with chromium_page(viewport=(1400, 1000)) as page, _shot_on_failure(page_holder := [], tmp_path):
            page_holder.append(page)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/01_explore_runs.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page.wait_for_timeout(3000)  # let the session settle before asking it to run
            for _ in range(3):  # Lab may first ask which kernel to start: accept python3, then run again
                page.get_by_role("menuitem", name="Run", exact=True).click(timeout=30_000)
                page.locator("li[data-command='runmenu:run-all']").click(timeout=30_000)
                page.wait_for_timeout(3000)
                accept = page.locator(".jp-Dialog button.jp-mod-accept")
                if not accept.count():
                    break
                accept.first.click()
                page.wait_for_timeout(3000)
            page.wait_for_function("document.querySelectorAll('.jupyter-widgets').length > 5", timeout=180_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", state="attached", timeout=180_000)
            page.wait_for_function(
                "[...document.querySelectorAll('.widget-html-content')].some(e => e.innerText.includes('runs'))",
                timeout=180_000)

            def runs_shown() -> str:
                return page.evaluate("[...document.querySelectorAll('.widget-html-content')]"
                                     ".map(e => e.innerText).find(t => /^\\d+ runs match/.test(t))")

            before = runs_shown()
            box = page.locator("input[placeholder^='e.g. params.learning_rate']").first
            box.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "lab-panel.png"))
            box.fill("params.learning_rate > 0.0005")
            box.press("Enter")
            page.wait_for_function(
                "[...document.querySelectorAll('.widget-html-content')].some(e => /^\\d+ runs match/.test(e.innerText) "
                f"&& e.innerText !== {before!r})", timeout=60_000)
            after = runs_shown()
            assert int(after.split()[0]) < int(before.split()[0])
            assert page.locator(".jupyter-widgets").count() > 5
            page.screenshot(path=str(tmp_path / "lab-filtered.png"))
    finally:
        stop(lab)
