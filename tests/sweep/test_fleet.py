"""One study, several invocations: flags, joining, sampler streams, budgets, the parent
run's closing, the stale-trial pass and `bench study repair` (in-process, fast)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench import signals
from bench.archs import get_arch
from bench.cli import main as cli_main
from bench.cli import run as cli_run
from bench.errors import BenchError, StoreFull
from bench.sweep.invocations import GRACE_S, leave, live_others, marker_key
from bench.sweep.progress import trial_line
from bench.sweep.reconcile import Reconciler, owner
from bench.sweep.samplers import make_sampler
from bench.sweep.settings import SweepControl, SweepSettings
from bench.sweep.shared import space_version
from bench.sweep.stale_trials import trial_owner_attrs
from bench.sweep.storage.backends import create_or_load_study, open_storage
from bench.sweep.study import finish_parent, prepare
from bench.sweep.workers import run_study
from bench.tracking.tracker import Tracker
from tests.support.sleeper import start_owner
from tests.support.sweeps import wait_until

JOURNAL = "journal.log"
INTERRUPTED = ["interrupted (SIGTERM)", "interrupted (SIGINT)"]


@pytest.fixture
def tiny(tmp_path):
    def settings(**changes) -> SweepSettings:
        base = SweepSettings(
            arch="mf",
            n_trials=3,
            timeout=None,
            max_epochs=2,
            study_name="mf-seed",  # explicit: the strict check of a joiner's settings
            storage=str(tmp_path / JOURNAL),
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        )
        return replace(base, **changes)

    return settings


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-epochs", "0"], "--max-epochs must be at least 1"),
        (["--timeout", "-1"], "--timeout must be positive seconds, or 0"),
        (["--valid-fraction", "0"], "--valid-fraction must lie strictly between 0 and 1"),
        (["--valid-fraction", "1"], "--valid-fraction must lie strictly between 0 and 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--study-trials", "0"], "--study-trials must be >= 1"),
        (["--heartbeat-interval", "5"], "--heartbeat-interval needs a database storage"),
        (
            ["--storage", "sqlite:///x.db", "--heartbeat-interval", "30"],
            r"--heartbeat-interval \(30 s\) must be at least 1 second and below --grace-period",
        ),
        (["--storage", "sqlite:///x.db", "--grace-period", "5"], r"\(10 s\) must be at least"),
    ],
)
def test_bad_sweep_flags_are_one_error_line_and_exit_2(flags, expected, tmp_path, capsys):
    journal = ["--storage", str(tmp_path / JOURNAL)] if "--storage" not in flags else []
    assert cli_main(["sweep", "--arch", "mf", *journal, *flags]) == 2
    assert re.search(expected, one_error_line(capsys))


def test_sigterm_and_ctrl_c_are_one_line_with_128_plus_the_signal(capsys):
    def terminated(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    def interrupted(argv):
        raise signals.Interrupted(signal.SIGINT)

    assert cli_run(terminated) == 143
    assert cli_run(interrupted) == 130
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored afterwards


class _SignalledInFinaliser:
    """Gets SIGTERM while Python runs its finaliser (as SQLAlchemy's weakref clean-up did)."""

    def __del__(self):
        signal.raise_signal(signal.SIGTERM)
        sum(range(10_000))  # the handler runs here, inside the finaliser


def test_a_signal_that_lands_in_a_finaliser_still_stops_the_command(capsys):
    """Python drops an exception raised in a finaliser ("Exception ignored ... Traceback");
    the signal is sent again and raised where the command sees it."""

    def command(argv):
        _SignalledInFinaliser()  # finalised at once: no reference is kept
        for _ in range(500):  # bounded: the re-sent signal lands at the first sleep
            time.sleep(0.01)
        return 0

    hook = sys.unraisablehook
    assert cli_run(command) == 143
    err = capsys.readouterr().err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert err.splitlines() == [
        "interrupted (SIGTERM): runs in flight are marked failed; rerun the command to resume"
    ]
    assert sys.unraisablehook is hook  # restored afterwards


def test_a_joiner_with_other_settings_is_refused_naming_what_differs(small_split, tiny):
    prepare(tiny(), small_split)
    for changes, differs in [
        ({"pruner": "none"}, "pruner='median', not pruner='none'"),
        ({"max_epochs": 3}, "max_epochs=2, not max_epochs=3"),
        ({"sparse_updates": True}, "sparse_updates=False, not sparse_updates=True"),
        ({"seed": 1, "valid_fraction": 0.2}, "seed=0, valid_fraction=0.1, not seed=1"),
    ]:
        with pytest.raises(BenchError, match="was created with") as caught:
            prepare(tiny(**changes), small_split)
        assert differs in str(caught.value) and "\n" not in str(caught.value)
    assert prepare(tiny(), small_split).created is False


def test_a_study_made_before_the_new_settings_were_stored_takes_the_defaults(
    small_split, tiny, tmp_path
):
    # a study from before sampler and patience were stored was run with TPE, no early stopping
    settings = tiny(max_epochs=None, sampler="tpe", patience=None)
    tracker = Tracker(settings.tracking_uri)
    parent = tracker.start_run(tracker.experiment(settings.name), "study-old")
    old = {"arch": "mf", "split": "seed", "metric": "mae", "seed": 0, "valid_fraction": 0.1}
    study, _ = create_or_load_study(settings.storage, settings.name)
    for key, value in {**old, "mlflow_parent_run_id": parent, "initialised": True}.items():
        study.set_user_attr(key, value)
    assert prepare(settings, small_split).parent_run_id == parent  # median, no epoch cap
    with pytest.raises(BenchError, match="max_epochs=None, not max_epochs=2"):
        prepare(tiny(sampler="tpe", patience=None), small_split)
    with pytest.raises(BenchError, match="sampler='tpe', patience=None, not sampler='tpe-small'"):
        prepare(tiny(max_epochs=None), small_split)  # today's defaults: another study


def test_space_version_changes_with_the_space():
    mf = get_arch("mf")

    def narrower(trial, max_epochs):  # k in 1..128, not 1..256
        config = mf.suggest(trial, max_epochs)
        trial.suggest_int("k", 1, 128, log=True)
        return config

    assert space_version(mf) == space_version(get_arch("mf"))
    assert space_version(replace(mf, suggest=narrower)) != space_version(mf)


def draws(prepared, n: int = 4) -> list[dict]:
    """What this invocation's first worker's sampler draws on a fresh in-memory study."""
    sampler = make_sampler(prepared.settings.seed, (*prepared.stream, 0, 0))
    study = optuna.create_study(sampler=sampler)
    arch = get_arch(prepared.settings.arch)
    study.optimize(lambda t: arch.suggest(t, 2) and 0.0, n_trials=n)
    return [t.params for t in study.trials]


def test_the_creator_draws_the_plain_seed_stream_and_joiners_their_own(small_split, tiny):
    creator = prepare(tiny(), small_split)
    joiners = [prepare(tiny(), small_split) for _ in range(2)]
    other_creator = prepare(tiny(study_name="again"), small_split)
    assert (creator.created, other_creator.created) == (True, True)
    assert draws(creator) == draws(other_creator)  # one fresh invocation: reproducible
    assert [j.created for j in joiners] == [False, False]
    assert socket.gethostname() in joiners[0].stream and os.getpid() in joiners[0].stream
    samples = [draws(creator), *(draws(j) for j in joiners)]
    assert all(a != b for i, a in enumerate(samples) for b in samples[i + 1 :])


def test_study_trials_ends_the_run_with_a_line(small_split, tiny, capsys):
    settings = tiny(n_trials=5)
    study = run_study(settings, small_split, SweepControl(study_trials=2))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    err = capsys.readouterr().err
    assert "mf-seed: the study holds its 2 trials (--study-trials)" in err
    assert len(re.findall(r"^mf-seed trial \d COMPLETE value ", err, re.M)) == 2


def test_a_retry_queued_once_the_budget_is_spent_is_failed_not_left_waiting(
    small_split, tiny, capsys
):
    """A heartbeat-lost trial's retry is queued (WAITING); once the study holds its budget
    no invocation would ever start it, so the invocation that ends fails it and says so."""
    settings = tiny(n_trials=5)
    study = run_study(settings, small_split, SweepControl(study_trials=2))
    lost = study.trials[1]
    study.add_trial(  # as RetryStaleTrial would, too late
        optuna.trial.create_trial(
            state=TrialState.WAITING, params=lost.params, distributions=lost.distributions,
            system_attrs={"failed_trial": lost.number},
        )
    )  # fmt: skip
    capsys.readouterr()
    study = run_study(settings, small_split, SweepControl(study_trials=2))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL]
    assert study.trials[2].user_attrs["dropped"] == "study budget spent"
    assert "mf-seed: queued trial 2 marked FAIL: the study's budget is spent" in (
        capsys.readouterr().err
    )


def test_a_timeout_that_cuts_the_run_short_is_one_line(small_split, tiny, capsys):
    study = run_study(tiny(n_trials=5, timeout=0.01), small_split)
    assert len([t for t in study.trials if t.state != TrialState.WAITING]) == 1
    assert "the 0.01 s timeout ended this run after 1 of its 5 trials" in capsys.readouterr().err


def parent_status(prepared) -> str:
    return MlflowClient(prepared.tracking_uri).get_run(prepared.parent_run_id).info.status


def test_the_parent_run_stays_running_while_another_invocations_trial_runs(
    small_split, tiny, capsys
):
    prepared = prepare(tiny(), small_split)
    storage = open_storage(prepared.storage_url)
    study = optuna.load_study(study_name=prepared.settings.name, storage=storage)
    elsewhere = study.ask()
    elsewhere.set_user_attr("host", "another-machine")
    elsewhere.set_user_attr("pid", 1)
    finish_parent(prepared, "FINISHED")
    assert parent_status(prepared) == "RUNNING"
    assert "1 trial(s) of other runs still running" in capsys.readouterr().err
    study.tell(elsewhere, 1.0)
    finish_parent(prepared, "FINISHED")
    assert parent_status(prepared) == "FINISHED"


def test_repair_fails_a_dead_processs_trial_in_both_stores_and_closes_the_parent(
    small_split, tiny, capsys
):
    settings = tiny()
    prepared = prepare(settings, small_split)
    owner = start_owner(settings.storage, settings.name, settings.tracking_uri)
    leave(_study(settings))  # the invocation that prepared the study has ended
    try:
        study = optuna.load_study(study_name=settings.name, storage=open_storage(settings.storage))
        wait_until(lambda: "pid" in study.trials[0].user_attrs, "a trial with its owner", 60)
    finally:
        owner.kill()
        owner.join(30)
    run_id = study.trials[0].user_attrs["mlflow_run_id"]
    flags = ["--storage", settings.storage, "--tracking-uri", settings.tracking_uri]
    assert cli_main(["study", "repair", *flags, "--study", settings.name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"mf-seed: trial 0 marked FAIL (MLflow run {run_id} FAILED): process {owner.pid} on "
        f"{socket.gethostname()} died"
    )
    assert out[1] == f"mf-seed: parent run {prepared.parent_run_id} closed (KILLED): no trial runs"
    run = MlflowClient(settings.tracking_uri).get_run(run_id)
    assert (run.info.status, run.data.tags["trial_state"]) == ("FAILED", "FAIL")
    assert study.trials[0].state == TrialState.FAIL
    assert cli_main(["study", "repair", *flags]) == 0
    assert capsys.readouterr().out == "mf-seed: nothing to repair\n"


def _study(settings: SweepSettings) -> optuna.Study:
    return optuna.load_study(study_name=settings.name, storage=open_storage(settings.storage))


def test_repair_leaves_the_parent_of_a_live_invocation_between_trials_running(
    small_split, tiny, capsys
):
    """An invocation starting up or between trials has no RUNNING trial: its record in the
    study (refreshed while it runs) keeps repair from closing its parent run."""
    settings = tiny()
    prepared = prepare(settings, small_split)
    study = _study(settings)
    leave(study)  # this test process stands for `bench study repair`, not an invocation
    live = subprocess.Popen(["sleep", "60"])  # an invocation on this machine, between trials
    try:
        study.set_user_attr(marker_key(pid=live.pid), {"seen": time.time(), "ended": False})
        far = marker_key(host="another-machine", pid=7)
        study.set_user_attr(far, {"seen": time.time() - GRACE_S - 1, "ended": False})  # silent
        flags = ["--storage", settings.storage, "--tracking-uri", settings.tracking_uri]
        assert cli_main(["study", "repair", *flags, "--study", settings.name]) == 0
        out = capsys.readouterr().out
        host = socket.gethostname()
        assert f"left RUNNING: invocation {host} {live.pid} alive" in out
        assert "another-machine" not in out
        assert parent_status(prepared) == "RUNNING"
        study.set_user_attr(far, {"seen": time.time(), "ended": False})  # heard from recently
        assert live_others(study, is_alive=lambda pid: False) == ["another-machine 7"]
    finally:
        live.kill()
        live.wait(10)
    study.set_user_attr(far, {"seen": time.time(), "ended": True})
    assert cli_main(["study", "repair", *flags, "--study", settings.name]) == 0
    assert "closed (KILLED): no trial runs" in capsys.readouterr().out
    assert parent_status(prepared) == "KILLED"


def test_a_heartbeat_lost_on_another_machine_fails_the_trial_in_both_stores(pg_url, tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment("beat")
    study, _ = create_or_load_study(pg_url, "beat", heartbeat_interval=1, grace_period=3)
    owner = start_owner(pg_url, "beat", tracker.uri, host="another-machine", heartbeat=(1, 3))
    try:
        wait_until(lambda: study.trials and "pid" in study.trials[0].user_attrs, "a trial", 60)
    finally:
        owner.kill()
        owner.join(30)
    killed_at = time.monotonic()
    study = optuna.load_study(study_name="beat", storage=open_storage(pg_url, 1, 3))
    reconciler = Reconciler(study, tracker, experiment)
    repairs = wait_until(reconciler.run, "the heartbeat's grace period", 30)
    print(f"\nheartbeat lost: trial settled {time.monotonic() - killed_at:.1f} s after kill -9")
    # the grace period given (3 s), not Optuna's default of two intervals behind its cache
    expected = f"heartbeat lost: process {owner.pid} on another-machine sent none for 3 s"
    assert [(r.number, r.reason) for r in repairs] == [(0, expected)]
    run = tracker.client.get_run(repairs[0].run_id)
    assert (run.info.status, run.data.tags["error"]) == ("FAILED", expected)
    retry = study.trials[1]  # Optuna's retry, without the dead owner's attrs
    assert retry.state == TrialState.WAITING and retry.params == study.trials[0].params
    assert not {"host", "pid", "mlflow_run_id"} & set(retry.user_attrs)
    assert trial_owner_attrs()["host"] != "another-machine"


def test_a_trial_killed_before_recording_its_owner_is_described_as_such():
    trial = optuna.trial.create_trial(state=TrialState.RUNNING)
    assert owner(trial) == "a process that died before recording itself"
    trial.set_user_attr("pid", 12)
    assert owner(trial) == "process 12 on an unknown host"


def test_a_trial_line_says_state_value_best_seconds_and_the_sampled_parameters():
    """(create_trial numbers a trial outside any study -1.)"""
    trial = optuna.trial.create_trial(
        params={"k": 118, "learning_rate": 0.0011439, "use_bias": True},
        distributions={
            "k": optuna.distributions.IntDistribution(1, 256, log=True),
            "learning_rate": optuna.distributions.FloatDistribution(5e-4, 5e-2, log=True),
            "use_bias": optuna.distributions.CategoricalDistribution([False, True]),
        },
        value=0.91689,
    )
    assert trial_line(trial, 0.9) == (
        "trial -1 COMPLETE value 0.9169 best 0.9000 0.0 s  "
        "k=118 learning_rate=0.00114 use_bias=True"
    )


def test_a_full_disk_as_a_trial_starts_ends_the_sweep_not_one_trial_after_another(
    small_split, tiny, monkeypatch
):
    """The trial in flight names its owner before anything can fail, so that it is
    failed (here: by this invocation's end) instead of running for good."""
    from mlflow.exceptions import MlflowException

    real, full = Tracker.start_run, [True]  # full for the first trial, freed afterwards

    def disk_full(self, experiment_id, name, parent=None, **kwargs):
        if parent is not None and full:  # the first trial's run
            full.clear()
            raise MlflowException("(sqlite3.OperationalError) database or disk is full")
        return real(self, experiment_id, name, parent, **kwargs)

    monkeypatch.setattr(Tracker, "start_run", disk_full)
    settings = tiny(n_trials=3)
    with pytest.raises(StoreFull, match="the disk of a store is full"):
        run_study(settings, small_split)
    study = optuna.load_study(study_name=settings.name, storage=open_storage(settings.storage))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[0].user_attrs["pid"] == os.getpid()  # the next start: svd-defaults
