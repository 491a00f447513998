"""The example notebooks, run the way a user runs them.

A project folder as the demo leaves it (``notebooks/`` and the demo's store ``mlflow.db``,
here the fixture store the demo writes first) is the starting point. Papermill runs each
notebook with its kernel in ``notebooks/`` and ``MLFLOW_TRACKING_URI`` naming the store,
as ``bash scripts/dev lab`` sets it, and the tests read back from the executed notebook
what a user sees: the store's runs, chain and study, checked against MLflow's own client.
The browser test starts JupyterLab through the lab command (``scripts/lab.py``), opens
the URL it prints in headless Chromium, runs every cell of 01 and finds the store's runs
in the run browser. No test leaves a store file anywhere but where it put one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.browser import chromium_page
from trackbook import layout as L
from trackbook.servers import free_port, stop

PROJECT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PROJECT / "notebooks"
STORE_VARIABLES = ("ML_TRACKING_BACKEND", "AIM_REPO_PATH", "ML_STORAGE_PATH")


def _db_files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*.db") if ".git" not in p.parts}


@pytest.fixture()
def project(fixture_dir: Path, tmp_path: Path):
    """A project folder after the demo: ``notebooks/`` and the demo's store; no other store appears anywhere."""
    root = tmp_path / "project"
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    shutil.copyfile(fixture_dir / "mlflow.db", root / "mlflow.db")
    before = _db_files(PROJECT)
    yield root
    assert _db_files(root) == {Path("mlflow.db")}
    assert _db_files(PROJECT) == before


@pytest.fixture()
def lab_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The environment the lab command gives its kernels: MLFLOW_TRACKING_URI names the demo's store."""
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _run(name: str, cwd: Path, out: Path, **parameters) -> nbformat.NotebookNode:
    pm.execute_notebook(str(cwd / name), str(out / name), parameters=parameters, progress_bar=False, cwd=str(cwd),
                        kernel_name="python3")
    nb = nbformat.read(out / name, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    return nb


def _mimes(nb) -> set[str]:
    return {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}


def _shown(nb, snippet: str) -> str:
    """What the first code cell whose source holds ``snippet`` showed: its printed and plain-text outputs."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and snippet in c.source)
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def _names(client: MlflowClient, experiment: str, filter_string: str = "") -> dict[str, str]:
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r.info.run_id for r in client.search_runs([exp.experiment_id], filter_string)}


def test_01_explore_runs(project: Path, lab_env: str, tmp_path: Path):
    nb = _run("01_explore_runs.ipynb", project / "notebooks", tmp_path)
    client = MlflowClient(lab_env)
    connected = _shown(nb, "tb.connect(store_uri)")
    assert str(project / "mlflow.db") in connected  # the store the environment names, not ./mlflow.db
    for exp in client.search_experiments():
        assert exp.name in connected
    runs_table = _shown(nb, "runs = store.runs(experiment)")
    names = _names(client, "ppo-cartpole")
    assert len(names) == 8
    for name in names:
        assert name[:20] in runs_table
    assert "application/vnd.jupyter.widget-view+json" in _mimes(nb)  # the panels
    assert "application/vnd.plotly.v1+json" in _mimes(nb)


def test_02_train_in_notebook(tmp_path: Path):
    nb = _run("02_train_in_notebook.ipynb", NOTEBOOKS, tmp_path, store_uri=f"sqlite:///{tmp_path / 'nb.db'}",
              timesteps=2048, n_trials=2)
    import trackbook as tb

    store = tb.connect(f"sqlite:///{tmp_path / 'nb.db'}")
    assert len(tb.chain_tree(store, "notebook-ppo")) == 2
    assert tb.study_list(store, "notebook-ppo-hpo")["n_trials"].tolist() == [2]
    assert "application/vnd.jupyter.widget-view+json" in _mimes(nb)


def test_03_chains_and_studies(project: Path, lab_env: str, tmp_path: Path):
    nb = _run("03_chains_and_studies.ipynb", project / "notebooks", tmp_path)
    client = MlflowClient(lab_env)
    names = _names(client, "ppo-cartpole")
    continuing = _names(client, "ppo-cartpole", f"tags.{L.TAG_BASE_RUN} != ''")
    assert sorted(continuing) == ["chain-1", "chain-1b", "chain-2"]
    tree = _shown(nb, "tree = tb.chain_tree(store, experiment)")
    for name in ["chain-0", *continuing]:  # the chain's root and every run that continues one
        assert name in tree
    for name in set(names) - {"chain-0", *continuing}:  # runs outside any chain are not in its tree
        assert name[:12] not in tree
    links = _shown(nb, "chain.links(")
    assert "chain-1" in links and "delta" in links  # pandas elides the wide table's middle rows' names

    trials = [r for r in client.search_runs([client.get_experiment_by_name("hpo-cartpole").experiment_id])
              if L.TAG_MLFLOW_PARENT in r.data.tags]
    (parent,) = {r.data.tags[L.TAG_MLFLOW_PARENT] for r in trials}
    assert parent in _shown(nb, "studies = tb.study_list(")
    best = max((r for r in trials if L.METRIC_OBJECTIVE in r.data.metrics),
               key=lambda r: r.data.metrics[L.METRIC_OBJECTIVE])
    shown_best = _shown(nb, "study.best[")
    assert re.search(rf"\b{best.data.tags[L.TAG_TRIAL_NUMBER]}\b", shown_best)
    assert f"{best.data.metrics[L.METRIC_OBJECTIVE]:.4f}"[:5] in shown_best
    assert "application/vnd.plotly.v1+json" in _mimes(nb)


def test_a_reader_on_a_missing_store_says_what_to_run_and_creates_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    for name in (*STORE_VARIABLES, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "notebooks"  # JupyterLab started by hand, no store named: ./mlflow.db, which is not there
    shutil.copytree(NOTEBOOKS, folder)
    for name in ("01_explore_runs.ipynb", "03_chains_and_studies.ipynb"):
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(folder / name), str(tmp_path / name), progress_bar=False, cwd=str(folder),
                                kernel_name="python3")
        assert err.value.ename == "StoreUnavailable"
        assert str(folder / "mlflow.db") in err.value.evalue
        assert "bash scripts/dev demo" in err.value.evalue and "bash scripts/dev lab" in err.value.evalue
    assert _db_files(tmp_path) == set()


@contextlib.contextmanager
def _shot_on_failure(page, folder: Path):
    try:
        yield
    except Exception:
        page.screenshot(path=str(folder / "failure.png"))
        raise


@contextlib.contextmanager
def _lab_command(root: Path, tmp_path: Path):
    """``bash scripts/dev lab`` on ``root`` (its Python part: the test runs in the set-up environment); the URL it prints."""
    log = tmp_path / "lab.log"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data")}
    with log.open("w") as out:
        lab = subprocess.Popen([sys.executable, str(PROJECT / "scripts" / "lab.py"), "--root", str(root),
                                "--port", str(free_port())], stdout=out, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (url := re.search(r"http://127\.0\.0\.1:\d+/lab/tree/\S+\?token=\w+", log.read_text())):
            assert lab.poll() is None, f"the lab command exited with {lab.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the lab command printed no URL in 180 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield url.group(0), log
    finally:
        stop(lab)


def _kernel_ready(page, url: str, timeout: float = 180) -> bool:
    """Until the server says the notebook's kernel is idle with the page connected to it (True), or Lab
    shows a dialog, asking which kernel to start (False).

    On a busy machine Lab may start a kernel, lose it and start another; a Run All sent in
    between is lost, so the test asks the server rather than the page.
    """
    base, token = url.split("/lab/")[0], url.rsplit("token=", 1)[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator(".jp-Dialog").count():
            return False
        kernels = requests.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json()
        # a kernel that is still starting can make the listing fail (a 500 whose body is a dict): not ready yet
        if isinstance(kernels, list) and any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return True
        page.wait_for_timeout(200)  # a poll interval: the loop ends on the condition above
    raise AssertionError(f"no connected idle kernel and no dialog within {timeout:.0f} s: {kernels}")


def _accept_dialog(page) -> None:
    page.locator(".jp-Dialog button.jp-mod-accept").first.click(timeout=30_000)
    page.wait_for_selector(".jp-Dialog", state="detached", timeout=30_000)


def _run_all(page, url: str) -> None:
    """Run > Run All Cells, as a user clicks it; accept the kernel Lab offers when it asks for one."""
    started = ("() => document.querySelector('.jp-Dialog') || [...document.querySelectorAll('.jp-InputPrompt')]"
               ".some(p => /\\[(\\*|\\d+)\\]/.test(p.innerText))")
    for _ in range(4):
        if not _kernel_ready(page, url):
            _accept_dialog(page)
            continue
        page.get_by_role("menuitem", name="Run", exact=True).click(timeout=30_000)
        page.locator("li[data-command='runmenu:run-all']").click(timeout=30_000)
        page.wait_for_function(started, timeout=60_000)
        if not page.locator(".jp-Dialog").count():
            return
        _accept_dialog(page)
    raise AssertionError("JupyterLab kept asking for a kernel")


def test_jupyterlab_from_the_lab_command_shows_the_demo_runs_and_a_filter_changes_the_table(project: Path,
                                                                                              tmp_path: Path):
    names = set(_names(MlflowClient(f"sqlite:///{project / 'mlflow.db'}"), "ppo-cartpole"))
    with _lab_command(project, tmp_path) as (url, log), chromium_page(viewport=(1400, 1000)) as page, \
            _shot_on_failure(page, tmp_path):
        assert f"MLFLOW_TRACKING_URI=sqlite:///{project / 'mlflow.db'}" in log.read_text()
        assert "/lab/tree/notebooks/01_explore_runs.ipynb" in url  # the kernel starts in notebooks/
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        _run_all(page, url)
        # every cell ran (none waits at [*], the last code cell has its number), or one raised
        page.wait_for_function(
            "() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.innerText);"
            " return (p.length && !p.some(t => t.includes('*')) && /\\[\\d+\\]/.test(p[p.length - 1])) ||"
            " [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.innerText.includes('Traceback')); }",
            timeout=300_000)
        tracebacks = page.evaluate("[...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText)"
                                   ".filter(t => t.includes('Traceback'))")
        assert not tracebacks
        page.wait_for_selector(".js-plotly-plot .main-svg", state="attached", timeout=60_000)

        def runs_shown() -> str:
            return page.evaluate("[...document.querySelectorAll('.widget-html-content')]"
                                 ".map(e => e.innerText).find(t => /^\\d+ runs match/.test(t))")

        page.wait_for_function("[...document.querySelectorAll('.widget-html-content')]"
                               ".some(e => /^\\d+ runs match/.test(e.innerText))", timeout=60_000)
        # the run browser lists the store's runs: its run picker, one option per run
        listed = page.evaluate("[...document.querySelectorAll('.widget-select-multiple option')]"
                               ".map(o => o.textContent)")
        # the picker shows spaces as no-break spaces; the HTML-named run shows as text, not markup
        listed = {re.sub(r"\s+\[\w+\]$", "", t.replace("\xa0", " ")) for t in listed}
        assert names <= listed
        assert runs_shown() == f"{len(names)} runs match"
        before = runs_shown()
        box = page.locator("input[placeholder^='e.g. params.learning_rate']").first
        box.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "lab-panel.png"))
        box.fill("params.learning_rate > 0.0005")
        box.press("Enter")
        page.wait_for_function(
            "[...document.querySelectorAll('.widget-html-content')].some(e => /^\\d+ runs match/.test(e.innerText) "
            f"&& e.innerText !== {before!r})", timeout=60_000)
        assert int(runs_shown().split()[0]) < len(names)
        page.screenshot(path=str(tmp_path / "lab-filtered.png"))
