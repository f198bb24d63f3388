"""Optuna storage: one-line errors, journal repair, creation by racing processes, stale trials.

The PostgreSQL and MLflow-server tests need .ci/services.sh (see tests/services.py).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import pwd
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bench.errors import BenchError
from bench.sweep.stale_trials import fail_stale_trials, trial_owner_attrs
from bench.sweep.storage.backends import create_or_load_study, open_storage
from bench.sweep.storage.journal import repair_journal
from bench.sweep.storage.urls import STORAGE_ENV, redact, resolve_storage
from bench.tracking.store import sqlite_wal

SPAWN = multiprocessing.get_context("spawn")
WAIT_S = 60  # bound on every wait for another process
PASSWORD = "s3cret-pw"


def quadratic(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", -1.0, 1.0) ** 2


def owned_sleeper(trial: optuna.Trial) -> float:
    """A trial that records its owner and then runs until it is killed."""
    trial.suggest_float("x", -1.0, 1.0)
    for key, value in trial_owner_attrs().items():
        trial.set_user_attr(key, value)
    time.sleep(5 * WAIT_S)
    return 0.0


def enqueue_zero(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 0.0})


def slow_enqueue_zero(study: optuna.Study) -> None:
    """A set-up that takes a while, like creating the MLflow parent run: without the lock,
    the other processes would not yet see the study initialised."""
    time.sleep(0.5)
    enqueue_zero(study)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def journal_with_trials(folder: Path, name: str, n_trials: int) -> Path:
    path = folder / "optuna-journal.log"
    study = optuna.create_study(study_name=name, storage=open_storage(str(path)))
    study.optimize(quadratic, n_trials=n_trials)
    return path


# --- where the storage is, and what its errors say ---------------------------------------


def test_resolve_storage_takes_flag_then_environment_then_journal_beside_mlflow(
    monkeypatch, tmp_path
):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_storage(None, tracking) == str(tmp_path / "optuna-journal.log")
    assert resolve_storage(None, "http://127.0.0.1:5000") == "optuna-journal.log"
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg://bench@db:5432/bench")
    assert resolve_storage(None, tracking) == "postgresql+psycopg://bench@db:5432/bench"
    assert resolve_storage("flag.log", tracking) == "flag.log"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://bench:{PASSWORD}@db:5432/bench",
        f"postgresql+psycopg://bench:{PASSWORD}@db:notaport/bench",  # unparseable
    ],
)
def test_redact_replaces_the_password(url):
    assert PASSWORD not in redact(url)
    assert "bench:***@db" in redact(url)


def test_unreachable_server_is_one_line_that_never_shows_the_password(capsys, caplog):
    url = f"postgresql+psycopg://bench:{PASSWORD}@127.0.0.1:{free_port()}/bench"
    with pytest.raises(BenchError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "bench:***@127.0.0.1" in message and "check that the server runs" in message
    shown = "".join(traceback.format_exception(caught.value)) + caplog.text
    assert PASSWORD not in shown + "".join(capsys.readouterr())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql+psycopg://bench:{PASSWORD}@db:notaport/bench", "not a valid database URL"),
        ("http://127.0.0.1:5000", "unknown scheme 'http'"),
        ("nosuchdb://bench@db/bench", "unknown scheme 'nosuchdb'"),
    ],
)
def test_bad_url_or_scheme_is_one_line_naming_the_url_forms(url, expected):
    with pytest.raises(BenchError, match=expected) as caught:
        open_storage(url)
    assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert "postgresql+psycopg://user@host:5432/db" in str(caught.value)


def test_missing_driver_names_the_extra_and_the_url_form(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(BenchError, match=r"pip install 'recsys-sweep-bench\[postgres\]'") as e:
        open_storage(f"postgresql+psycopg://bench:{PASSWORD}@127.0.0.1:5432/bench")
    assert "postgresql+psycopg://user@host:5432/db" in str(e.value)
    assert PASSWORD not in str(e.value)


def test_journal_in_a_missing_folder_fails_and_creates_nothing(tmp_path):
    path = tmp_path / "missing" / "optuna-journal.log"
    with pytest.raises(BenchError, match="does not exist"):
        open_storage(str(path))
    assert list(tmp_path.iterdir()) == []


def test_journal_needs_no_heartbeat(tmp_path):
    with pytest.raises(BenchError, match="heartbeats need a database storage"):
        open_storage(str(tmp_path / "optuna-journal.log"), heartbeat_interval=1)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder that any user may enter (pytest's own is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def open_error(path: str) -> str:
    try:
        open_storage(path)
    except BenchError as exc:
        return str(exc)
    return "opened"


def _run_as_nobody(function: Callable, args: tuple, results) -> None:
    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    results.put(function(*args))


def as_unprivileged(function: Callable, *args):
    """function(*args), as user nobody when we are root: root may write in any folder."""
    if os.geteuid() != 0:
        return function(*args)
    results = SPAWN.Queue()
    process = SPAWN.Process(target=_run_as_nobody, args=(function, args, results))
    process.start()
    try:
        return results.get(timeout=WAIT_S)
    finally:
        process.join(timeout=WAIT_S)


def test_journal_in_a_read_only_folder_fails_and_creates_nothing(shared_tmp):
    folder = shared_tmp / "read-only"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)  # whatever the umask
    message = as_unprivileged(open_error, str(folder / "optuna-journal.log"))
    assert "is read-only" in message and str(folder) in message
    assert list(folder.iterdir()) == []


# --- journal repair ---------------------------------------------------------------------


def test_torn_last_record_is_dropped_and_the_study_goes_on(tmp_path):
    path = journal_with_trials(tmp_path, "torn", n_trials=3)
    complete = path.read_bytes()
    torn = b'{"op_code":4,"worker_id":"w-1","study_id":0,"datetime_sta'
    path.write_bytes(complete + torn)
    assert repair_journal(path) == len(torn)
    assert path.read_bytes() == complete

    path.write_bytes(complete + torn)  # open_storage repairs by itself
    study = optuna.load_study(study_name="torn", storage=open_storage(str(path)))
    study.optimize(quadratic, n_trials=1)  # appended after the last complete record
    reloaded = optuna.load_study(study_name="torn", storage=open_storage(str(path)))
    assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 4


def test_garbage_inside_the_journal_is_one_error_naming_file_and_line(tmp_path):
    path = journal_with_trials(tmp_path, "garbage", n_trials=2)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"not a record\n", *lines[1:]]))
    with pytest.raises(BenchError, match="line 2 is not a journal record") as caught:
        open_storage(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# --- creation by processes that start at the same instant ------------------------------


def create_at_barrier(url: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=WAIT_S)
        _, created = create_or_load_study(url, "race", initialise=slow_enqueue_zero)
        results.put(created)
    except BaseException:
        results.put(traceback.format_exc())


def race(url: str, processes: int) -> list:
    """What create_or_load_study returned in each of `processes` simultaneous processes."""
    barrier = SPAWN.Barrier(processes)
    results = SPAWN.Queue()
    workers = [
        SPAWN.Process(target=create_at_barrier, args=(url, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        return [results.get(timeout=2 * WAIT_S) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=WAIT_S)


def assert_created_once(url: str, results: list) -> None:
    assert sorted(results, key=str) == [False] * (len(results) - 1) + [True], results
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    enqueued = [t.system_attrs.get("fixed_params") for t in study.trials]
    assert enqueued == [{"x": 0.0}]  # initialise ran once


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_four_processes_create_a_fresh_study_exactly_once(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/optuna.db" if kind == "sqlite" else str(tmp_path / "j.log")
    assert_created_once(url, race(url, processes=4))


def test_failed_initialise_is_run_again_by_the_next_caller(tmp_path):
    url = str(tmp_path / "optuna-journal.log")

    def fail(study: optuna.Study) -> None:
        raise RuntimeError("parent run not created")

    with pytest.raises(RuntimeError, match="parent run"):
        create_or_load_study(url, "retry", initialise=fail)
    assert create_or_load_study(url, "retry", initialise=enqueue_zero)[1] is True
    assert create_or_load_study(url, "retry", initialise=enqueue_zero)[1] is False


# --- trials of killed processes -----------------------------------------------------------


def run_sleeper(url: str, name: str, heartbeat_interval=None, grace_period=None) -> None:
    storage = open_storage(url, heartbeat_interval, grace_period)
    study = optuna.load_study(study_name=name, storage=storage)
    study.optimize(owned_sleeper, n_trials=1)


def wait_for_trial_of(pid: int, url: str, name: str) -> int:
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("pid") == pid:
                return trial.number
        time.sleep(0.2)
    raise AssertionError(f"process {pid} started no trial in {WAIT_S} s")


def wait_for_journal_unlocked(url: str) -> None:
    """Killed while it holds the journal's lock (the record is visible before the lock is
    released), a process would make the next writer wait Optuna's 30 s grace period."""
    deadline = time.monotonic() + WAIT_S
    while "://" not in url and os.path.exists(url + ".lock") and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_sleeping_trial(url: str, name: str, heartbeat=(None, None)) -> int:
    """Run one sleeping trial in a new process, kill -9 it once the trial runs; its number."""
    process = SPAWN.Process(target=run_sleeper, args=(url, name, *heartbeat))
    process.start()
    try:
        number = wait_for_trial_of(process.pid, url, name)
        wait_for_journal_unlocked(url)
        return number
    finally:
        process.kill()
        process.join(timeout=WAIT_S)


def test_fail_stale_trials_fails_only_running_trials_of_dead_processes_here(tmp_path):
    url = str(tmp_path / "optuna-journal.log")
    study, _ = create_or_load_study(url, "stale")
    dead = kill_sleeping_trial(url, "stale")
    dead_pid = study.trials[dead].user_attrs["pid"]
    mine, elsewhere = study.ask(), study.ask()
    for key, value in trial_owner_attrs().items():
        mine.set_user_attr(key, value)
    elsewhere.set_user_attr("host", "another-host")
    elsewhere.set_user_attr("pid", dead_pid)

    assert fail_stale_trials(study) == [dead]
    states = {trial.number: trial.state for trial in study.get_trials()}
    running = TrialState.RUNNING
    assert states == {dead: TrialState.FAIL, mine.number: running, elsewhere.number: running}
    assert fail_stale_trials(study) == []


def test_a_journal_trial_names_its_owner_in_the_record_that_creates_it(tmp_path):
    """Whatever write fails next (a full disk), a dead owner's trial can be failed."""
    url = tmp_path / "optuna-journal.log"
    study, _ = create_or_load_study(str(url), "owned")
    trial = study.ask()
    created = [json.loads(line) for line in url.read_text().splitlines()]
    created = [record for record in created if record["op_code"] == 4]  # CREATE_TRIAL
    assert [record["user_attrs"] for record in created] == [trial_owner_attrs()]
    assert trial.user_attrs == trial_owner_attrs()
    study.enqueue_trial({"x": 1.0})  # a queued trial has no owner until it runs
    assert study.get_trials()[-1].user_attrs == {}


def test_sqlite_wal_switches_the_mlflow_store_to_wal(tmp_path):
    path = tmp_path / "mlflow.db"
    sqlite_wal(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- PostgreSQL and the MLflow server (.ci/services.sh) ---------------------------------


def test_three_processes_create_a_fresh_postgres_study_exactly_once(pg_url):
    assert_created_once(pg_url, race(pg_url, processes=3))


def test_heartbeat_fails_a_killed_trial_and_retries_its_params_once(pg_url):
    heartbeat = (1, 2)  # interval, grace period (s)
    create_or_load_study(pg_url, "beat", heartbeat_interval=1, grace_period=2)
    first = kill_sleeping_trial(pg_url, "beat", heartbeat)
    time.sleep(3.5)  # past the grace period after its last heartbeat
    retry = kill_sleeping_trial(pg_url, "beat", heartbeat)  # fails `first`, runs its retry
    time.sleep(3.5)
    study = optuna.load_study(study_name="beat", storage=open_storage(pg_url, *heartbeat))
    study.optimize(quadratic, n_trials=1)  # fails `retry`, which is not retried again

    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert (first, retry) == (0, 1)
    assert trials[1].params == trials[0].params
    assert trials[1].system_attrs["failed_trial"] == first
    assert "failed_trial" not in trials[2].system_attrs


def mlflow_api(server: str, endpoint: str, payload: dict | None = None) -> dict:
    """One call of MLflow's REST API (not MlflowClient: importing mlflow costs each spawned
    test process 2 s)."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):  # the server's basic auth (.ci/services.sh)
        user = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        headers["Authorization"] = f"Basic {base64.b64encode(user.encode()).decode()}"
    request = urllib.request.Request(f"{server}/api/2.0/mlflow/{endpoint}", data, headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_mlflow_server_records_a_run(mlflow_server):
    name = f"services-{uuid.uuid4().hex}"
    experiment = mlflow_api(mlflow_server, "experiments/create", {"name": name})
    run = mlflow_api(mlflow_server, "runs/create", {"experiment_id": experiment["experiment_id"]})
    run_id = run["run"]["info"]["run_id"]
    metric = {"run_id": run_id, "key": "rmse", "value": 0.9, "timestamp": 0, "step": 0}
    mlflow_api(mlflow_server, "runs/log-metric", metric)
    stored = mlflow_api(mlflow_server, f"runs/get?run_id={run_id}")["run"]["data"]["metrics"]
    assert [(m["key"], m["value"]) for m in stored] == [("rmse", 0.9)]
