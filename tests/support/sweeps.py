"""Real `bench sweep` processes for the fault tests: start, watch, stop, and check the stores.

Every invocation runs in its own session (process group), with stdout and stderr in files
(a full pipe would block it), and every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench.archs import get_arch
from bench.sweep.storage.backends import open_storage

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 150  # bound on every wait for an invocation
POLL_S = 0.3  # the sweeps need the two cores more than the test does
MLFLOW_STATE = {"COMPLETE": {"FINISHED"}, "PRUNED": {"FINISHED"}, "FAIL": {"FAILED", "KILLED"}}


@dataclass
class Invocation:
    """One `bench sweep` process and where its output goes."""

    process: subprocess.Popen
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = WAIT_S) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            message = f"sweep {self.pid} still ran after {timeout} s:\n{self.stderr}"
            raise AssertionError(message) from None

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def lines(self) -> list[str]:
        """stderr without TensorFlow's and MLflow's start-up chatter."""
        noise = ("I0000", "E0000", "W0000", "WARNING: All log", "To enable the", "INFO mlflow")
        return [line for line in self.stderr.splitlines() if not line.startswith(noise)]


def start(folder: Path, name: str, *flags: str, env: dict | None = None) -> Invocation:
    """`bench sweep` (with the `synthetic` data set) in its own process group."""
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    command = [sys.executable, "-m", "tests.support.sweep_entry", "--arch", "mf", *flags]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
            start_new_session=True,
        )
    return Invocation(process, out, err)


def wait_until(condition: Callable[[], object], what: str, timeout: float = WAIT_S):
    """condition()'s first truthy value, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"not within {timeout} s: {what}")


class Stores:
    """Where one study lives: its Optuna storage and its MLflow store (opened once)."""

    def __init__(self, storage: str, tracking_uri: str, name: str = "synthetic-mf-seed-e2"):
        self.storage, self.tracking_uri, self.name = storage, tracking_uri, name
        self._study: optuna.Study | None = None
        self._client: MlflowClient | None = None  # not before the sweeps made the store

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def study(self) -> optuna.Study:
        if self._study is None:
            storage = open_storage(self.storage)
            self._study = optuna.load_study(study_name=self.name, storage=storage)
        return self._study

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        try:
            return self.study().get_trials()
        except KeyError:  # not created yet
            return []

    def runs(self) -> list:
        experiment = self.client.get_experiment_by_name(self.name)
        if experiment is None:
            return []
        return self.client.search_runs([experiment.experiment_id], max_results=1000)

    def running_trial(self, pids: set[int] | None = None):
        """A trial that runs now (owned by one of `pids`, when given), with its MLflow run:
        past its owner's first writes, its config suggested in full (a kill before that
        would leave trial 0 without the post's settings, which the stores' checks expect)."""
        for trial in self.trials():
            owner = trial.user_attrs.get("pid")
            started = "mlflow_run_id" in trial.user_attrs
            if trial.state == TrialState.RUNNING and started and (pids is None or owner in pids):
                return trial
        return None

    def nothing_running(self) -> bool:
        if any(t.state == TrialState.RUNNING for t in self.trials()):
            return False
        return all(run.info.status != "RUNNING" for run in self.runs())


def descendants(pid: int) -> set[int]:
    """The ids of a process's descendants (from /proc): an invocation's workers are its
    fork server's children."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def kill_mid_trial(stores: Stores, signum: int, pids: set[int] | None = None) -> tuple:
    """Send signum to the owner of a running trial (one of pids); (trial number, pid)."""
    trial = wait_until(lambda: stores.running_trial(pids), "a running trial")
    journal_lock = Path(stores.storage + ".lock")
    if "://" not in stores.storage:  # not while it holds the journal's lock (30 s grace)
        wait_until(lambda: not journal_lock.exists(), "the journal unlocked", timeout=30)
    pid = trial.user_attrs["pid"]
    os.kill(pid, signum)
    return trial.number, pid


def settled(stores: Stores, numbers: set[int]) -> bool:
    """Whether these trials are finished in Optuna and their MLflow runs closed."""
    trials = {t.number: t for t in stores.trials()}
    if any(trials[n].state == TrialState.RUNNING for n in numbers):
        return False
    runs = [r for r in stores.runs() if r.data.tags.get("trial_number") in map(str, numbers)]
    return all(run.info.status != "RUNNING" for run in runs)


def report(case: str, since: float, condition: Callable[[], bool]) -> float:
    """Wait for condition; print and return the seconds since `since`."""
    wait_until(condition, case)
    seconds = time.monotonic() - since
    print(f"\n{case}: {seconds:.1f} s")
    return seconds


def assert_stores_agree(stores: Stores) -> tuple[list, dict]:
    """One FINISHED parent run; every started trial exactly one child run whose state agrees
    with Optuna's; trial 0 (the post's settings) once; no sampled configuration twice;
    nothing RUNNING. The trials, and the child runs by trial number."""
    trials, runs = stores.trials(), stores.runs()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.status for p in parents] == ["FINISHED"], [p.info for p in parents]
    children: dict[str, list] = {}
    for run in runs:
        if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id:
            children.setdefault(run.data.tags["trial_number"], []).append(run)
    started = [t for t in trials if t.state != TrialState.WAITING]
    assert sorted(children, key=int) == [str(t.number) for t in started]
    by_number = {}
    for trial in started:
        (run,) = children[str(trial.number)]
        assert run.data.tags["trial_state"] == trial.state.name, (trial.number, run.data.tags)
        assert run.info.status in MLFLOW_STATE[trial.state.name], (trial.number, run.info)
        by_number[trial.number] = run
    assert trials[0].params == get_arch("mf").default_params(max_epochs=2)
    originals = [t for t in trials if "failed_trial" not in t.system_attrs]  # not retries
    assert sum(t.user_attrs.get("baseline") == "post" for t in originals) == 1
    sampled = [t for t in trials if "fixed_params" not in t.system_attrs]
    configs = [tuple(sorted(t.params.items())) for t in sampled if t.params]
    assert len(configs) == len(set(configs))
    assert stores.nothing_running()
    return trials, by_number
