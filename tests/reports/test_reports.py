"""Reports executed for real (papermill, a kernel of this environment, nbconvert) and read in Chromium."""

from __future__ import annotations

import html as htmllib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest

import trackbook as tb
from tests.browser import chromium_page
from tests.reports.conftest import LOSS, REWARD
from trackbook.errors import ReportFailed, ReportParameterError


@pytest.fixture(scope="module")
def uri(fixture_dir) -> str:
    return f"sqlite:///{fixture_dir / 'mlflow.db'}"


@pytest.fixture(scope="module")
def ids(fixture_ids) -> dict[str, str]:
    return fixture_ids["mlflow"]


def _open(html: Path, shot: Path, *, figures: int, tables: int, texts: list[str]) -> None:
    """Open the report in headless Chromium, wait for plotly to draw, check the DOM."""
    with chromium_page() as page:
        page.goto(html.as_uri())
        if figures:
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}",
                                   timeout=60_000)
        assert page.locator(".js-plotly-plot").count() == figures
        assert page.locator("table.tb-table").count() == tables
        body = page.inner_text("body")
        for text in texts:
            assert text in body, text
        page.screenshot(path=str(shot), full_page=True)
        assert page.console_errors == [], page.console_errors
        assert page.dialogs == []
    assert shot.stat().st_size > 10_000


def test_training_report(tmp_path: Path, uri, ids):
    data, path = tb.report("training", tmp_path / "training.html", store_uri=uri, run_id=ids["plain-0"],
                           progress=False)
    assert data["run_id"] == ids["plain-0"] and data["status"] == "FINISHED"
    assert data["final"]["eval/mean_reward"] == pytest.approx(
        tb.connect(uri).run(ids["plain-0"])["metrics.eval/mean_reward"])
    assert any("NaN" in p for p in data["problems"])  # the fixture's NaN losses are reported
    html = path.read_text()
    assert "<script src=\"http" not in html and "Plotly.newPlot" in html  # one offline file
    assert "hl-ipython3" not in html  # code hidden by default
    _open(path, tmp_path / "training.png", figures=1, tables=4,
          texts=["Training report: ppo-lr-3e-4", "What went wrong", "train/loss: 7 NaN/inf points", "Artifacts"])


def test_hpo_report(tmp_path: Path, uri, ids):
    data, path = tb.report("hpo", tmp_path / "hpo.html", store_uri=uri, parent_run_id=ids["study"], progress=False)
    study = tb.study(tb.connect(uri), ids["study"])
    assert data["best_trial"] == study.best["trial_number"] and data["best_value"] == pytest.approx(
        study.best["objective"])
    assert data["states"] == {"COMPLETE": 6, "FAIL": 1, "RUNNING": 1}
    _open(path, tmp_path / "hpo.png", figures=4, tables=2,
          texts=["trial 5 (trial-5) is FAIL", "trial 7 (trial-7) is RUNNING", "Parameter importance"])


def test_comparison_report(tmp_path: Path, uri, ids):
    runs = [ids["plain-0"], ids["plain-1"], ids["chain-0"]]
    data, path = tb.report("comparison", tmp_path / "cmp.html", store_uri=uri, run_ids=runs,
                           metrics=["rollout/ep_rew_mean", "train/loss"], progress=False)
    table = tb.compare(tb.connect(uri), runs, ["rollout/ep_rew_mean", "train/loss"])
    assert data["best_run"] == table.loc[table["rank.rollout/ep_rew_mean"] == 1, "run_id"].iloc[0]
    assert data["problems"] == ["chain-0 never logged train/loss"]
    # plain-0 and chain-0 repeat one configuration (learning_rate 3e-4) with seeds 0 and 10: the report groups them
    assert data["groups"]["learning_rate=0.0003"]["seeds"] == [0, 10]
    _open(path, tmp_path / "cmp.png", figures=4, tables=2,
          texts=["chain-0 never logged train/loss", "3 runs repeat 2 configurations"])


def test_chain_report_through_the_cli_with_the_seed_flags(tmp_path: Path, uri, ids):
    out = tmp_path / "chain.html"
    done = subprocess.run([sys.executable, "-m", "trackbook.cli", "report", "chain", "--tracking-uri", uri,
                           "--experiment-name", "ppo-cartpole", "--output-path", str(out), "--metrics",
                           "rollout/ep_rew_mean", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    # the deepest chain of the experiment, the latest on ties: chain-0 -> chain-1 -> chain-1b
    _open(out, tmp_path / "chain.png", figures=1, tables=3,
          texts=["Enhancement chain: chain-0 → chain-1b", "Every link is present, finished, and improved on its base."])


def _text(html: str) -> str:
    """The HTML's text as a reader sees it (highlighted code is split into many spans)."""
    return htmllib.unescape(re.sub(r"<[^>]+>", "", html))


def test_show_code_and_ipynb_format(tmp_path: Path, uri, ids):
    code = "store = tb.connect(store_uri)"  # a line of the training template
    _, hidden = tb.report("training", tmp_path / "hidden.html", store_uri=uri, run_id=ids["plain-1"], progress=False)
    _, shown = tb.report("training", tmp_path / "code.html", store_uri=uri, run_id=ids["plain-1"], show_code=True,
                         progress=False)
    assert code not in _text(hidden.read_text()) and "ppo-lr-1e-3" in _text(hidden.read_text())
    assert code in _text(shown.read_text())
    _, kept = tb.report("training", tmp_path / "kept.ipynb", store_uri=uri, run_id=ids["plain-1"], format="ipynb",
                        progress=False)
    nb = nbformat.read(kept, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and ids["plain-1"] in injected[0].source
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))  # every cell ran
    assert any(o.get("output_type") == "display_data" for c in code_cells for o in c.outputs)


def test_html_in_run_names_is_text_not_markup(tmp_path: Path, uri, ids, mlflow_store):
    runs = mlflow_store.runs("ppo-cartpole")
    evil = runs[runs["name"].str.contains("<script>")].iloc[0]
    _, path = tb.report("training", tmp_path / "xss.html", store_uri=uri, run_id=evil["run_id"], progress=False)
    html = path.read_text()
    assert '<script>alert("xss")</script>' not in html and "<b>bold</b>" not in html
    _open(path, tmp_path / "xss.png", figures=1, tables=4, texts=['<script>alert("xss")</script> & <b>bold</b>'])


def test_parameters_must_be_plain_data(tmp_path: Path, uri, ids):
    class Sneaky:
        def __repr__(self):
            return "__import__('os').system('touch pwned')"

    with pytest.raises(ValueError, match="plain data"):
        tb.report("training", tmp_path / "x.html", store_uri=uri, run_id=Sneaky())
    with pytest.raises(ValueError, match="identifier"):
        tb.report("training", tmp_path / "x.html", store_uri=uri, **{"run_id=1;import os;x": "y"})
    # a string that looks like code stays a string: papermill writes it as a literal
    with pytest.raises(ReportFailed, match=r"cell \d+: InvalidRunId"):
        tb.report("training", tmp_path / "x.html", store_uri=uri, run_id="'); __import__('os').system('touch pwned",
                  progress=False)
    assert not (Path.cwd() / "pwned").exists()


def test_a_failing_cell_names_template_cell_and_error_and_keeps_the_notebook(tmp_path: Path, uri):
    missing = "0" * 32
    with pytest.raises(ReportFailed) as info:
        tb.report("training", tmp_path / "missing.html", store_uri=uri, run_id=missing, progress=False)
    error = info.value
    assert tb.ReportFailed is ReportFailed and isinstance(error, tb.TrackbookError)
    message = str(error)
    assert "training.ipynb" in message and "RunNotFound" in message and f"cell {error.exec_count}" in message
    assert error.template.name == "training.ipynb" and error.ename == "RunNotFound" and missing in error.evalue
    assert any("RunNotFound" in line for line in error.traceback) and "store.run(run_id)" in error.source
    assert error.notebook.is_file() and error.notebook.name == "missing.failed.ipynb"
    assert not (tmp_path / "missing.html").exists()
    # the attributes point at the cell that holds the error in the kept notebook (papermill's index: its
    # red banners, added to the kept copy, not counted)
    nb = nbformat.read(error.notebook, as_version=4)
    cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    failed = [i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [error.cell_index]
    assert cells[error.cell_index].execution_count == error.exec_count
    assert cells[error.cell_index].outputs[-1]["ename"] == error.ename


def test_an_unknown_parameter_name_is_refused_before_a_kernel_starts(tmp_path: Path, uri, ids):
    declared = list(pm.inspect_notebook(str(tb.reports.TEMPLATES / "training.ipynb")))
    with pytest.raises(ReportParameterError) as info:
        tb.report("training", tmp_path / "typo.html", stor_uri=uri, run_id=ids["plain-0"], progress=False)
    message = str(info.value)
    assert "'stor_uri'" in message and "did you mean 'store_uri'" in message
    assert f"its parameters are {', '.join(declared)}" in message and "run_id" in declared
    assert isinstance(info.value, ValueError) and list(tmp_path.iterdir()) == []
    # a kernel would have run the first cell, which leaves a mark
    mark = tmp_path / "kernel-ran"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_id = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(mark)!r}, 'w').close()"), params]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "marks.ipynb")
    with pytest.raises(ReportParameterError, match=r"no parameter 'runid' \(did you mean 'run_id'\?\); its "
                                                   r"parameters are run_id\."):
        tb.report(template=tmp_path / "marks.ipynb", output=tmp_path / "m.html", runid="x", progress=False)
    assert not mark.exists()
    assert tb.reports.template_parameters(template=tmp_path / "marks.ipynb") == {"run_id": '""'}


def test_the_cli_exits_non_zero_after_an_error(tmp_path: Path, uri):
    out = tmp_path / "fails.html"
    done = subprocess.run([sys.executable, "-m", "trackbook.cli", "report", "training", "--store", uri, "--run-id",
                           "0" * 32, "-o", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stdout == "" and "trackbook report: Report template training.ipynb failed" in done.stderr
    assert "RunNotFound" in done.stderr and not out.exists() and (tmp_path / "fails.failed.ipynb").is_file()
    done = subprocess.run([sys.executable, "-m", "trackbook.cli", "report", "chain", "--store", uri, "-p",
                           "metric=train/loss", "-o", str(out), "--no-progress"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "no parameter 'metric' (did you mean 'metrics'?)" in done.stderr, done.stderr


def test_chain_report_judges_links_by_the_metrics_goal(tmp_path: Path, small_store):
    client, ids = small_store["client"], small_store["ids"]
    data, path = tb.report("chain", tmp_path / "goal.html", store_uri=small_store["uri"], run_id=ids["next"],
                           metrics=[LOSS, REWARD], progress=False)

    def last(run: str, metric: str) -> float:  # MLflow's own answer: the last point by step
        return max(client.get_metric_history(ids[run], metric), key=lambda m: m.step).value

    assert last("next", LOSS) < last("base", LOSS) and last("next", REWARD) < last("base", REWARD)
    assert data["changes"] == {f"1:{LOSS}": "better", f"1:{REWARD}": "worse"}
    assert data["deltas"][f"1:{LOSS}"] == pytest.approx(last("next", LOSS) - last("base", LOSS))
    assert data["problems"] == [f"link 1 (next) made {REWARD} worse: {last('base', REWARD):.4g} → "
                                f"{last('next', REWARD):.4g}"]
    _open(path, tmp_path / "goal.png", figures=1, tables=3,
          texts=[f"made {REWARD} worse", "better", "Enhancement chain: base → next"])
    assert f"made {LOSS} worse" not in path.read_text()
    # the caller's goal wins over the name
    data, _ = tb.report("chain", tmp_path / "goal2.html", store_uri=small_store["uri"], run_id=ids["next"],
                        metrics=[LOSS], goals={LOSS: "max"}, progress=False)
    assert data["changes"] == {f"1:{LOSS}": "worse"}


def test_training_report_of_a_run_still_going(tmp_path: Path, small_store):
    run_id = small_store["ids"]["still-going"]
    client = small_store["client"]
    # a point logged now: the run shows a sign of life, so it is not stale however long the session took so far
    client.log_metric(run_id, REWARD, 31.0, timestamp=int(time.time() * 1000), step=1100)
    assert client.get_run(run_id).info.status == "RUNNING"
    data, path = tb.report("training", tmp_path / "running.html", store_uri=small_store["uri"], run_id=run_id,
                           progress=False)
    assert data["status"] == "RUNNING"
    assert data["problems"] == ["The run is still running: what is shown is what it had logged so far"]
    assert "ended RUNNING" not in path.read_text()
    _open(path, tmp_path / "running.png", figures=1, tables=4, texts=["The run is still running"])


def test_credentials_never_reach_the_html_or_the_notebook(tmp_path: Path, http_store, ids, monkeypatch):
    """The served fixture, reached with credentials in the URI and in MLFLOW_TRACKING_TOKEN."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-3141592653")
    host = http_store.uri.split("://", 1)[1]
    uri = f"http://alice:s3cr3t-pw@{host}"
    title = "s3cr3t-pw tok-3141592653"  # a template that prints a secret gets it scrubbed
    _, html = tb.report("training", tmp_path / "cred.html", store_uri=uri, run_id=ids["plain-0"], title=title,
                        progress=False)
    _, nb = tb.report("training", tmp_path / "cred.ipynb", store_uri=uri, run_id=ids["plain-0"], format="ipynb",
                      show_code=True, progress=False)
    for text in (html.read_text(), nb.read_text()):
        assert "s3cr3t-pw" not in text and "tok-3141592653" not in text and "alice:" not in text
        assert "ppo-lr-3e-4" in text  # the report itself is there


def test_a_users_own_template(tmp_path: Path, uri, ids):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('store_uri = ""\nrun_id = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import trackbook as tb\nfrom trackbook.reports import display as rd\n"
        "rd.record(name=tb.connect(store_uri).run(run_id)['name'])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    template = tmp_path / "mine.ipynb"
    nbformat.write(nb, template)
    data, path = tb.report(template=template, output=tmp_path / "mine.html", store_uri=uri, run_id=ids["plain-1"],
                           progress=False)
    assert data == {"name": "ppo-lr-1e-3"} and path.is_file()
    assert json.loads(json.dumps(data))  # plain data
