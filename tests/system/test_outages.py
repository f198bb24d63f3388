"""Stores that go away under real `bench sweep` invocations. The PostgreSQL server that
.ci/services.sh started is restarted, then stopped for 20 s, while three invocations share a
study on it (the MLflow server's backend is the same PostgreSQL server, so it is away too);
and a disk that fills up under the journal and the MLflow SQLite store."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from optuna.trial import TrialState

from tests.support.services import required_env
from tests.support.sweeps import Stores, assert_stores_agree, start, wait_until
from tests.support.synthetic import synthetic_ratings, write_folder

OUTAGE_S = 20
# the study's size: past what the invocations have started when the server stops (about 7 to
# 12 finished, up to 6 running), so that each keeps asking for trials through the outage
STUDY_TRIALS = 20


def pg_ctl(action: str, *args: str, check: bool = True) -> None:
    """pg_ctl on the test server, as its owner (PostgreSQL refuses to run as root); the
    server it starts writes to its log, not to pipes this test would wait on."""
    owner = ["runuser", "-u", "benchpg", "--"] if os.geteuid() == 0 else []
    data = required_env("BENCH_TEST_PG_DATA")
    log = f"--log={os.path.dirname(data)}/postgres.log"
    command = [f"{required_env('BENCH_TEST_PG_BIN')}/pg_ctl", f"--pgdata={data}", action, log]
    subprocess.run(
        [*owner, *command, "--wait", "--timeout=60", *args],
        check=check, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=90,
    )  # fmt: skip


def finished(stores: Stores) -> list:
    return [t for t in stores.trials() if t.state.is_finished()]


def test_invocations_ride_out_a_restart_and_a_20_second_outage(tmp_path, pg_url, mlflow_server):
    data = write_folder(tmp_path / "data", synthetic_ratings())
    name = f"outage-{tmp_path.name}"[-60:]
    stores = Stores(pg_url, mlflow_server, name)
    flags = [
        *("--dataset", "synthetic", "--data-dir", str(data), "--max-epochs", "3"),
        *("--timeout", "0", "--tracking-uri", mlflow_server, "--workers", "2"),
        *("--study-trials", str(STUDY_TRIALS), "--heartbeat-interval", "2", "--grace-period", "40"),
        *("--study-name", name, "--outage-tolerance", "120"),
    ]
    env = {"BENCH_STORAGE": pg_url}
    invocations = [start(tmp_path, f"m{i}", *flags, env=env) for i in range(3)]
    try:
        wait_until(lambda: len(finished(stores)) >= 3, "three finished trials")
        pg_ctl("restart", "--mode=fast")  # about a second away
        before = len(finished(stores))
        wait_until(lambda: len(finished(stores)) >= before + 3, "three trials after the restart")
        failed = [t for t in stores.trials() if t.state == TrialState.FAIL]
        assert not failed, "\n\n".join(i.stderr for i in invocations)  # what failed them
        pg_ctl("stop", "--mode=immediate")
        time.sleep(OUTAGE_S)
    finally:
        pg_ctl("start", check=False)  # (already running if the test failed before the stop)
    codes = [i.wait(timeout=300) for i in invocations]
    errs = [i.stderr for i in invocations]
    assert codes == [0, 0, 0], "\n\n".join(errs)  # a string: pytest shows it whole
    for err in errs:
        assert "Traceback" not in err, err
    away = [line for err in errs for line in err.splitlines() if "unreachable (" in line]
    back = [line for err in errs for line in err.splitlines() if " is back after " in line]
    assert away and len(back) == len(away), errs  # every process that saw it go saw it return
    trials, _ = assert_stores_agree(stores)
    assert len([t for t in trials if t.state.is_finished()]) >= STUDY_TRIALS
    assert not [t.number for t in trials if t.state == TrialState.FAIL]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs for the stores; skipped where this process may not mount one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, timeout=30)


def test_a_full_disk_is_one_error_line_and_a_rerun_repairs_and_resumes(tmp_path, small_disk):
    data = write_folder(tmp_path / "data", synthetic_ratings())
    stores = Stores(str(small_disk / "journal.log"), f"sqlite:///{small_disk}/mlflow.db")
    flags = [
        *("--dataset", "synthetic", "--data-dir", str(data), "--max-epochs", "2"),
        *("--timeout", "0", "--storage", stores.storage, "--tracking-uri", stores.tracking_uri),
    ]
    full = start(tmp_path, "full", *flags, "--trials", "500", "--workers", "2")
    assert full.wait() == 2, full.stderr
    errors = [line for line in full.lines() if line.startswith("error:")]
    assert errors and all("the disk of a store is full" in line for line in errors), errors
    assert len(errors) <= 3  # the invocation's, or its workers' (one each)
    assert "Traceback" not in full.stderr, full.stderr

    remount = ["mount", "-o", "remount,size=64m", str(small_disk)]
    subprocess.run(remount, check=True, capture_output=True, timeout=30)
    rerun = start(tmp_path, "rerun", *flags, "--trials", "1")
    assert rerun.wait() == 0, rerun.stderr
    trials, _ = assert_stores_agree(stores)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[-1].state.is_finished() and len(trials) >= 2
