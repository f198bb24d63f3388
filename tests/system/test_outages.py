"""Database outages under real `bench sweep` invocations: the PostgreSQL server that
.ci/services.sh started is restarted, then stopped for 20 s, while three invocations share a
study on it (the MLflow server's backend is the same PostgreSQL server, so it is away too)."""

from __future__ import annotations

import os
import subprocess
import time

from optuna.trial import TrialState

from tests.support.services import required_env
from tests.support.sweeps import Stores, assert_stores_agree, start, wait_until
from tests.support.synthetic import synthetic_ratings, write_folder

OUTAGE_S = 20


def pg_ctl(*args: str) -> None:
    """pg_ctl on the test server, as its owner (PostgreSQL refuses to run as root)."""
    owner = ["runuser", "-u", "benchpg", "--"] if os.geteuid() == 0 else []
    data = required_env("BENCH_TEST_PG_DATA")
    command = [f"{required_env('BENCH_TEST_PG_BIN')}/pg_ctl", f"--pgdata={data}", *args]
    subprocess.run([*owner, *command], check=True, capture_output=True, timeout=90)


def finished(stores: Stores) -> list:
    return [t for t in stores.trials() if t.state.is_finished()]


def test_invocations_ride_out_a_restart_and_a_20_second_outage(tmp_path, pg_url, mlflow_server):
    data = write_folder(tmp_path / "data", synthetic_ratings())
    name = f"outage-{tmp_path.name}"[-60:]
    stores = Stores(pg_url, mlflow_server, name)
    flags = [
        *("--dataset", "synthetic", "--data-dir", str(data), "--max-epochs", "3"),
        *("--timeout", "0", "--tracking-uri", mlflow_server, "--workers", "2"),
        *("--study-trials", "36", "--heartbeat-interval", "2", "--grace-period", "40"),
        *("--study-name", name, "--outage-tolerance", "120"),
    ]
    env = {"BENCH_STORAGE": pg_url}
    invocations = [start(tmp_path, f"m{i}", *flags, env=env) for i in range(3)]
    try:
        wait_until(lambda: len(finished(stores)) >= 3, "three finished trials")
        pg_ctl("restart", "--mode=fast", "--wait", "--timeout=60")  # about a second away
        before = len(finished(stores))
        wait_until(lambda: len(finished(stores)) >= before + 3, "three trials after the restart")
        assert not [t.number for t in stores.trials() if t.state == TrialState.FAIL]
        pg_ctl("stop", "--mode=immediate", "--wait", "--timeout=60")
        time.sleep(OUTAGE_S)
    finally:
        log = f"{required_env('BENCH_TEST_PG_DATA')}/../postgres.log"
        pg_ctl("start", f"--log={log}", "--wait", "--timeout=60")
    codes = [i.wait(timeout=300) for i in invocations]
    errs = [i.stderr for i in invocations]
    assert codes == [0, 0, 0], errs
    for err in errs:
        assert "Traceback" not in err, err
    away = [line for err in errs for line in err.splitlines() if "unreachable (" in line]
    back = [line for err in errs for line in err.splitlines() if " is back after " in line]
    assert away and len(back) == len(away), errs  # every process that saw it go saw it return
    trials, _ = assert_stores_agree(stores)
    assert len([t for t in trials if t.state.is_finished()]) >= 36
    assert not [t.number for t in trials if t.state == TrialState.FAIL]
