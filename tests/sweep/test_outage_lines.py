"""What a storage outage prints: the storage's own line when it goes and when it is back,
not Optuna's multi-line warning that its trial query falls back to a slower one."""

from __future__ import annotations

import logging

import optuna
import pytest
import sqlalchemy.orm
from sqlalchemy.exc import OperationalError

from bench.sweep.storage.outages import FALLBACK, OPTUNA_RDB_LOGGER, TolerantRDBStorage


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_seen():
    """The messages Optuna's trial query logs (what its handler would print)."""
    logger, records = logging.getLogger(OPTUNA_RDB_LOGGER), Records()
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)


@pytest.fixture
def stored(tmp_path):
    """A storage holding one study of two finished trials."""
    storage = TolerantRDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", outage_tolerance=30)
    study = optuna.create_study(storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    return storage, study._study_id


def fail_queries(monkeypatch, times: int) -> None:
    """The next `times` trial queries fail as a lost connection does, then they run."""
    real, left = sqlalchemy.orm.Query.all, [times]

    def all_(query):
        if left[0]:
            left[0] -= 1
            lost = Exception("server closed the connection unexpectedly")
            raise OperationalError("SELECT trials", {}, lost)
        return real(query)

    monkeypatch.setattr(sqlalchemy.orm.Query, "all", all_)


def test_an_outage_during_the_trial_query_is_said_in_one_line_each_way(
    stored, monkeypatch, capsys, warnings_seen
):
    storage, study_id = stored
    fail_queries(monkeypatch, 2)  # the query and Optuna's fallback query both fail
    assert len(storage.get_all_trials(study_id)) == 2  # the third attempt: back
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert "unreachable (" in err[0] and "server closed the connection" in err[0]
    assert "is back after" in err[1]
    assert not [m for m in warnings_seen if m.startswith(FALLBACK)]


def test_a_query_that_only_its_fallback_answers_still_warns(stored, monkeypatch, warnings_seen):
    """Optuna's own case (too many IN variables): the fallback succeeds, so no outage."""
    storage, study_id = stored
    fail_queries(monkeypatch, 1)
    assert len(storage.get_all_trials(study_id)) == 2
    assert [m for m in warnings_seen if m.startswith(FALLBACK)]
