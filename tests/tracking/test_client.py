"""The tracker's MLflow client: writes that lose a unique-key race to another writer (a
tag, a data set) are written again; every other error is raised at once."""

from __future__ import annotations

import threading
import uuid

import pytest
from mlflow.entities import Dataset, DatasetInput
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos import databricks_pb2

from bench.tracking import Tracker, client
from bench.tracking.client import RACE_TRIES, lost_a_race, raced

PG_RACE = (
    'BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates unique '
    'constraint "tag_pk"\nDETAIL:  Key (key, run_uuid)=(k2, 46a5) already exists.'
)  # fmt: skip
SQLITE_RACE = "(sqlite3.IntegrityError) UNIQUE constraint failed: tags.key, tags.run_uuid"


class Losing:
    """A write that raises `error` for its first `losses` calls, then returns "written"."""

    def __init__(self, losses: int, error: str, code: str = "INTERNAL_ERROR"):
        self.losses, self.error, self.code, self.calls = losses, error, code, 0

    def __call__(self, *args, **kwargs) -> str:
        self.calls += 1
        if self.calls <= self.losses:
            if self.code == "TEMPORARILY_UNAVAILABLE":  # a server's answer
                raise RestException({"error_code": self.code, "message": self.error})
            raise MlflowException(self.error, error_code=getattr(databricks_pb2, self.code))
        return "written"


def test_a_unique_key_refusal_is_a_lost_race_and_other_errors_are_not():
    assert lost_a_race(MlflowException(PG_RACE))
    assert lost_a_race(MlflowException(SQLITE_RACE))
    assert not lost_a_race(MlflowException("RESOURCE_DOES_NOT_EXIST: run 'x' not found"))
    assert not lost_a_race(ValueError(PG_RACE))  # not from the store


@pytest.mark.parametrize("error", [PG_RACE, SQLITE_RACE])
def test_a_write_that_lost_races_is_written_again_until_it_lands(error):
    write = Losing(RACE_TRIES - 1, error)
    assert raced(write, "run", key="k") == "written"
    assert write.calls == RACE_TRIES


def test_a_write_that_keeps_losing_gives_up_with_the_stores_error():
    write = Losing(RACE_TRIES, PG_RACE)
    with pytest.raises(MlflowException, match="UniqueViolation"):
        raced(write)
    assert write.calls == RACE_TRIES


def test_any_other_error_is_raised_on_the_first_write():
    write = Losing(1, "PERMISSION_DENIED: only admins write")
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        raced(write)
    assert write.calls == 1


def race(writers: int, write) -> list[str]:
    """write(writer) in `writers` threads released at one instant; the errors' first lines."""
    barrier, errors = threading.Barrier(writers), []

    def run(writer: int) -> None:
        barrier.wait(30)
        try:
            write(writer)
        except MlflowException as exc:
            errors.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_writers_racing_for_new_tags_on_one_run_all_land(mlflow_server):
    """Six threads tag one run with the same new keys at the same instant, through an
    MLflow server on PostgreSQL (a plain MlflowClient lost 6 of 120 such writes)."""
    tracker = Tracker(mlflow_server)
    experiment = tracker.client.create_experiment(f"race-{uuid.uuid4().hex[:8]}")
    run = tracker.client.create_run(experiment).info.run_id
    writers, keys = 6, 20
    for key in range(keys):

        def write(writer: int, key: int = key) -> None:
            if writer % 2:
                tracker.client.set_tag(run, f"key{key}", f"writer{writer}")
            else:
                tracker.log(run, {"seen": float(key)}, tags={f"key{key}": f"writer{writer}"})

        assert race(writers, write) == []
    tags = tracker.client.get_run(run).data.tags
    written = {f"writer{w}" for w in range(writers)}
    assert all(tags[f"key{key}"] in written for key in range(keys))


def test_writers_racing_to_log_one_new_data_set_all_land(mlflow_server):
    """Six runs of one experiment log the same new data set at the same instant (the
    workers of several invocations starting their first trials on one split)."""
    tracker = Tracker(mlflow_server)
    experiment = tracker.client.create_experiment(f"race-{uuid.uuid4().hex[:8]}")
    runs = [tracker.client.create_run(experiment).info.run_id for _ in range(6)]
    for round_ in range(10):
        digest = uuid.uuid4().hex[:8]
        dataset = Dataset(f"split-{round_}", digest, "code", '{"tags": {}}')

        def write(writer: int, dataset: Dataset = dataset) -> None:
            tracker.client.log_inputs(runs[writer], datasets=[DatasetInput(dataset)])

        assert race(len(runs), write) == []
    for run in runs:
        logged = {d.dataset.name for d in tracker.client.get_run(run).inputs.dataset_inputs}
        assert logged == {f"split-{r}" for r in range(10)}


def test_a_call_is_sent_again_while_the_servers_store_is_away(monkeypatch):
    monkeypatch.setattr(client, "OUTAGE_PAUSE_S", 0.0)
    away = ("(psycopg.OperationalError) connection failed", "TEMPORARILY_UNAVAILABLE")
    write = Losing(3, *away)
    assert client.through_outages(write) == "written" and write.calls == 4
    other = Losing(1, "bad", "INVALID_PARAMETER_VALUE")
    with pytest.raises(MlflowException, match="bad"):
        client.through_outages(other)
    assert other.calls == 1  # any other error at once
    full = Losing(1, "(sqlite3.OperationalError) database or disk is full", away[1])
    with pytest.raises(MlflowException, match="disk is full"):
        client.through_outages(full)  # a full disk is said at once, never waited for
    local = MlflowException("(sqlite3.OperationalError) locked",
                            error_code=databricks_pb2.TEMPORARILY_UNAVAILABLE)  # fmt: skip
    assert not client.store_away(local)  # a local store's error: not a server's answer
    monkeypatch.setattr(client, "OUTAGE_S", 0.0)
    with pytest.raises(MlflowException, match="connection failed"):
        client.through_outages(Losing(99, *away))  # the outage outlasts the tolerance
