"""What a person sees in the MLflow UI, checked in a real browser (Debian's Chromium).

One MLflow server on a free port of 127.0.0.1 serves its own SQLite store, made by a small
sweep (MF, 4 trials of at most 3 epochs; a pruner that prunes the odd trials after their
second epoch) and a tiny benchmark, both on generated data. Screenshots go to
reports/browser/ for a person to look at. Without Chromium the test is skipped, except under
CI, where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.cli import benchmark as benchmark_cli
from bench.data import make_split, read_folder
from bench.sweep import samplers
from bench.sweep.settings import SweepSettings
from bench.sweep.workers import run_study
from tests.support.synthetic import synthetic_ratings, write_folder

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "reports" / "browser"
STUDY = "mf-seed"  # named: the benchmark's Pareto plot reads the study ARCH-SPLIT
MODEL = "recsys-mf-ml-100k"
EPOCHS = 3
TIMEOUT_MS = 90_000  # generous: CI machines are shared


class PruneOddTrials(optuna.pruners.BasePruner):
    """Prunes trials 1 and 3 after their second epoch: a study with pruned trials for sure."""

    def prune(self, study, trial):
        return trial.number % 2 == 1 and max(trial.intermediate_values, default=0) >= 1


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "no chromium on PATH (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _build_store(folder: Path) -> str:
    """The sweep and the benchmark, into folder/mlflow.db (artifacts under folder)."""
    data = read_folder(write_folder(folder / "data", synthetic_ratings()))
    split = make_split(data, "seed", seed=0, valid_fraction=0.1)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    settings = SweepSettings(
        arch="mf", n_trials=4, timeout=None, max_epochs=EPOCHS, study_name=STUDY,
        storage=str(folder / "journal.log"), tracking_uri=uri,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setattr(samplers, "make_pruner", lambda name, max_epochs: PruneOddTrials())
        run_study(settings, split)
        (folder / "configs.json").write_text(json.dumps({"mf": {"k": 2, "epochs": EPOCHS}}))
        args = benchmark_cli.parse_args(
            ["--protocol", "pinned", "--configs", str(folder / "configs.json"), "--archs", "mf",
             "--folds", "u1",
             "--tracking-uri", uri, "--report-dir", str(folder / "report")]
        )  # fmt: skip
        benchmark_cli.run(replace(args, promote=True), data)  # the reference a person promoted
        benchmark_cli.run(args, data)  # the next night's run, gated against it
    return uri


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer in {seconds} s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    """The server and its workers: its whole process group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def server(chromium, tmp_path_factory) -> Iterator[SimpleNamespace]:
    folder = tmp_path_factory.mktemp("browser")
    uri = _build_store(folder)
    port = _free_port()
    log = folder / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/health", process, log)
        yield SimpleNamespace(base=base, uri=uri)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser_page(server, chromium) -> Iterator[Page]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page
        finally:
            browser.close()


def api(server: SimpleNamespace, path: str, body: dict | None = None) -> dict:
    """The REST API the UI calls (POST with a JSON body, or GET)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.base}/ajax-api/2.0/mlflow/{path}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _experiment_id(server: SimpleNamespace, name: str) -> str:
    found = api(server, "experiments/search", {"max_results": 100})["experiments"]
    return next(e["experiment_id"] for e in found if e["name"] == name)


def _runs(server: SimpleNamespace, experiment_id: str) -> dict[str, dict]:
    found = api(server, "runs/search", {"experiment_ids": [experiment_id], "max_results": 100})
    return {run["info"]["run_name"]: run for run in found["runs"]}


def _tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


def _trial_names(server: SimpleNamespace, experiment_id: str) -> dict[int, str]:
    """Run name by trial number (the best trial's ends in " (best)")."""
    runs = _runs(server, experiment_id).items()
    return {int(_tags(r)["trial_number"]): n for n, r in runs if "trial_number" in _tags(r)}


def _open(page: Page, url: str) -> None:
    """Go to a page of the training-runs UI, without the assistant panel."""
    separator = "&" if "?" in url else "?"
    page.goto(f"{url}{separator}workflowType=machine_learning", wait_until="load")
    with contextlib.suppress(PlaywrightTimeout):  # no panel on this page
        page.get_by_role("button", name="Close").first.click(timeout=5000)


def test_study_parent_expands_to_its_trials_and_pruned_trials_say_so(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, STUDY)
    _open(page, f"{server.base}/#/experiments/{experiment}/runs")
    name_cell = page.locator("[role=gridcell][col-id='attributes.`Run Name`']")
    parent = name_cell.filter(has_text=f"study-{STUDY}").first
    parent.wait_for()
    assert page.get_by_text("trial-0000", exact=True).count() == 0  # collapsed
    parent.locator("button").first.click()  # the expander beside the parent's name
    page.get_by_text("trial-0001 (pruned)").wait_for()
    names = {text.strip().splitlines()[-1] for text in name_cell.all_inner_texts()}
    trials = _trial_names(server, experiment)
    assert {trials[0], "trial-0001 (pruned)", trials[2], "trial-0003 (pruned)"} <= names
    assert sum(name.endswith(" (best)") for name in (trials[0], trials[2])) == 1
    columns = ["Dataset", "Source", "Models", "trial_state", "best_trial", "val_mae"]
    columns.append("test_mae")
    _toggle_columns(page, columns)
    state_cells = page.locator("[role=gridcell][col-id='tags.`trial_state`']")
    assert sorted(state_cells.all_inner_texts()) == [
        "-",
        "COMPLETE",
        "COMPLETE",
        "PRUNED",
        "PRUNED",
    ]
    best = next(name for name in names if name.endswith(" (best)"))
    number = next(number for number, name in trials.items() if name == best)
    assert _cell(page, f"study-{STUDY}", "metrics.`best_trial`") == str(number)
    for metric in ("val_mae", "test_mae"):  # the parent shows its best trial's figures
        assert (
            _cell(page, f"study-{STUDY}", f"metrics.`{metric}`")
            == _cell(page, best, f"metrics.`{metric}`")
            != "-"
        )
    page.screenshot(path=SHOTS / "1_study_runs_expanded.png")


def _cell(page: Page, run_name: str, column: str) -> str:
    """The text of one cell of the runs table: the row of `run_name`, the column's id."""
    name = page.locator("[role=gridcell][col-id='attributes.`Run Name`']").filter(has_text=run_name)
    row = name.first.locator("xpath=ancestor::*[@role='row'][1]").get_attribute("row-index")
    return page.locator(f"[role=row][row-index='{row}'] [col-id='{column}']").first.inner_text()


def _toggle_columns(page: Page, names: list[str]) -> None:
    """Tick or untick columns in the runs table's Columns menu, as in a saved view."""
    page.get_by_role("button", name="Columns").click()
    search = page.get_by_placeholder("Search columns")
    for name in names:
        search.fill(name)
        node = page.locator(".du-bois-light-tree-treenode").filter(has_text=re.compile(f"^{name}$"))
        node.first.locator(".du-bois-light-tree-checkbox").click()
    page.keyboard.press("Escape")


def test_a_trials_val_mae_chart_has_one_point_per_epoch(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, STUDY)
    name = _trial_names(server, experiment)[2]
    trial = _runs(server, experiment)[name]["info"]["run_id"]
    with page.expect_response(lambda r: "get-history" in r.url and "val_mae" in r.url) as got:
        _open(page, f"{server.base}/#/experiments/{experiment}/runs/{trial}/model-metrics")
        page.get_by_placeholder("Search metric charts").fill("val_mae")
    points = got.value.json()["metrics"]
    assert sorted(point["step"] for point in points) == list(range(EPOCHS))
    page.get_by_text(f"{name} (val_mae)").wait_for()  # the chart's legend
    page.screenshot(path=SHOTS / "2_trial_val_mae_chart.png")


def test_a_trials_embedding_statistics_are_charts_over_its_epochs(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, STUDY)
    name = _trial_names(server, experiment)[0]
    trial = _runs(server, experiment)[name]["info"]["run_id"]
    metric = "embeddings/user_norm_mean"
    with page.expect_response(
        lambda r: "get-history" in r.url and "user_norm_mean" in r.url
    ) as got:
        _open(page, f"{server.base}/#/experiments/{experiment}/runs/{trial}/model-metrics")
        page.get_by_placeholder("Search metric charts").fill("embeddings/")
    points = got.value.json()["metrics"]
    assert sorted(point["step"] for point in points) == list(range(EPOCHS))
    assert len({point["value"] for point in points}) > 1  # the norms move as the model trains
    page.get_by_text(f"{name} ({metric})").wait_for()  # the chart's legend
    page.screenshot(path=SHOTS / "7_trial_embedding_curves.png")


def test_the_promoted_reference_is_marked_and_the_next_run_names_it(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, "benchmark")
    runs = _runs(server, experiment)
    jobs = {n: _tags(r) for n, r in runs.items() if n.startswith("benchmark-")}
    [reference] = [n for n, tags in jobs.items() if tags.get("bench.reference") == "true"]
    [gated] = [n for n in jobs if n != reference]
    assert jobs[gated]["bench.gated_against"] == f"reference run {reference}"
    _open(page, f"{server.base}/#/experiments/{experiment}/runs")
    page.get_by_text(gated).first.wait_for()
    _toggle_columns(page, ["Dataset", "Source", "Models", "bench.reference", "bench.gated_against"])
    assert _cell(page, reference, "tags.`bench.reference`") == "true"
    assert _cell(page, gated, "tags.`bench.gated_against`") == f"reference run {reference}"
    page.screenshot(path=SHOTS / "8_promoted_reference.png")


def test_the_study_run_page_describes_the_study_and_its_best_trial(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, STUDY)
    parent = _runs(server, experiment)[f"study-{STUDY}"]["info"]["run_id"]
    _open(page, f"{server.base}/#/experiments/{experiment}/runs/{parent}")
    page.get_by_text("Best trial:").first.wait_for()
    assert page.get_by_text("Search space").count() >= 1
    page.screenshot(path=SHOTS / "3_study_description.png", full_page=True)


def test_the_champion_is_on_the_models_page(server, browser_page):
    page = browser_page
    _open(page, f"{server.base}/#/models")
    page.get_by_role("link", name=MODEL).first.click()
    page.get_by_text("champion").first.wait_for()
    page.screenshot(path=SHOTS / "4_registered_model.png")
    versions = api(server, f"model-versions/search?filter=name%3D%27{MODEL}%27")
    assert len(versions["model_versions"]) == 2  # the sweep's champion, the benchmark's model


def test_the_benchmark_report_renders_with_its_figures_in_the_artifact_viewer(server, browser_page):
    page = browser_page
    experiment = _experiment_id(server, "benchmark")
    runs = _runs(server, experiment)
    parent = next(run for name, run in runs.items() if name.startswith("benchmark-"))
    _open(
        page, f"{server.base}/#/experiments/{experiment}/runs/{parent['info']['run_id']}/artifacts"
    )
    page.get_by_text("report.html", exact=True).click()
    report = page.frame_locator("iframe").first
    report.get_by_text("Benchmark report").wait_for()
    images = report.locator("img")
    images.first.wait_for()
    widths = [images.nth(i).evaluate("img => img.naturalWidth") for i in range(images.count())]
    assert len(widths) == 4 and min(widths) > 0  # metrics, loss curves, embeddings, Pareto
    page.screenshot(path=SHOTS / "5_benchmark_report_html.png")
    for i, name in enumerate(["metrics", "loss_curves", "embeddings", "pareto"]):
        images.nth(i).screenshot(path=SHOTS / f"6_report_{name}.png")  # as the viewer shows it
