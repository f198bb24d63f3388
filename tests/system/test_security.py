"""Security: the MLflow server authenticates every change, no store keeps a secret, and the
files the harness creates are private. The server tests need .ci/services.sh."""

from __future__ import annotations

import stat
import uuid

import psycopg
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from psycopg import sql
from requests import HTTPError
from sqlalchemy.engine import make_url

from tests.support.services import required_env
from tests.support.sweeps import start
from tests.support.synthetic import synthetic_ratings, write_folder

CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def _recorded(client: MlflowClient) -> tuple[str, str]:
    """A run with an artifact and a model whose @champion is version 1: (run id, model)."""
    experiment = client.create_experiment(f"security-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "original", "note.txt")
    model = f"security-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model)
    for _ in range(2):
        source = f"{run.info.artifact_uri}/note.txt"
        client.create_model_version(model, source, run_id=run.info.run_id)
    client.set_registered_model_alias(model, "champion", "1")
    return run.info.run_id, model


def _changes(client: MlflowClient, run_id: str, model: str) -> dict:
    return {
        "move the alias": lambda: client.set_registered_model_alias(model, "champion", "2"),
        "delete the run": lambda: client.delete_run(run_id),
        "overwrite the artifact": lambda: client.log_text(run_id, "changed", "note.txt"),
        "delete the model": lambda: client.delete_registered_model(model),
    }


@pytest.mark.parametrize("who", ["anonymous", "reader"])
def test_only_writers_change_what_the_mlflow_server_holds(mlflow_server, monkeypatch, who):
    admin = MlflowClient(mlflow_server)  # the admin's credentials, from the environment
    run_id, model = _recorded(admin)
    if who == "reader":  # a machine given read-only access, as README describes
        password = uuid.uuid4().hex
        get_app_client("basic-auth", tracking_uri=mlflow_server).create_user(who, password)
        monkeypatch.setenv(CREDENTIALS[0], who)
        monkeypatch.setenv(CREDENTIALS[1], password)
    else:
        for name in CREDENTIALS:
            monkeypatch.delenv(name)
    client = MlflowClient(mlflow_server)
    for what, change in _changes(client, run_id, model).items():
        with pytest.raises((MlflowException, HTTPError), match="40[13]"):
            change()
            pytest.fail(f"{who} could {what}")
    if who == "reader":
        assert client.get_run(run_id).info.lifecycle_stage == "active"  # reading works
    monkeypatch.undo()
    assert admin.get_model_version_by_alias(model, "champion").version == "1"
    assert admin.get_run(run_id).info.lifecycle_stage == "active"
    with open(admin.download_artifacts(run_id, "note.txt")) as note:
        assert note.read() == "original"


def _database_text(url: str) -> str:
    """Every row of every table of the database at `url`, as text."""
    parsed = make_url(url)
    info = {"host": parsed.host, "port": parsed.port, "user": parsed.username}
    with psycopg.connect(**info, dbname=parsed.database, connect_timeout=5) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        query = sql.SQL("SELECT coalesce(string_agg(t::text, chr(10)), '') FROM {} t")
        return "\n".join(
            connection.execute(query.format(sql.Identifier(name))).fetchone()[0]
            for (name,) in tables
        )


def test_no_store_keeps_the_database_password_and_the_files_are_private(tmp_path, pg_url):
    """The password on the command line (a URL with it) reaches neither store, no artifact
    and no output; the MLflow store's files are readable by their owner only."""
    password = required_env("BENCH_TEST_PG_PASSWORD")
    storage = make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    data = write_folder(tmp_path / "data", synthetic_ratings())
    store = tmp_path / "store"
    store.mkdir()
    flags = ["--dataset", "synthetic", "--data-dir", str(data), "--max-epochs", "2"]
    flags += ["--timeout", "0", "--trials", "3", "--storage", storage]
    sweep = start(tmp_path, "sweep", *flags, "--tracking-uri", f"sqlite:///{store}/mlflow.db")
    assert sweep.wait() == 0, sweep.stderr

    assert password not in sweep.stderr + sweep.out.read_text()
    assert password not in _database_text(pg_url)
    files = [path for path in store.rglob("*") if path.is_file()]
    assert any(path.name == "mlflow.db" for path in files) and len(files) > 3
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    # what the sweep created (the test made `store`): folders 0700, so that nothing in
    # them is reachable by others (MLflow copies the model's code file with its 0644), and
    # the SQLite store 0600
    private = [p for p in store.rglob("*") if p.is_dir() or p.name.startswith("mlflow.db")]
    assert len(private) > 5
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("synthetic-mf-seed-e2").experiment_id
    notes = [
        run.data.tags.get("mlflow.note.content", "") for run in client.search_runs([experiment])
    ]
    started = [note for note in notes if "Started with" in note]
    assert len(started) == 1 and "--storage" in started[0] and ":***@" in started[0]


def test_a_workers_job_never_shows_the_environment_it_carries():
    """Each worker is handed the invocation's environment (credentials included); the job's
    text, which error lines and logs may show, leaves it out."""
    from bench.sweep.pool import WorkerJob

    secret = uuid.uuid4().hex
    job = WorkerJob(0, 0, 1, None, 1, {"MLFLOW_TRACKING_PASSWORD": secret})
    assert job.environment == {"MLFLOW_TRACKING_PASSWORD": secret}
    assert secret not in repr(job) and secret not in str(job)


def _signed_in_as_a_reader(server: str) -> dict[str, str]:
    """A new user with no grant (the recipe's read-only machine): its credentials."""
    who, password = f"reader-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    get_app_client("basic-auth", tracking_uri=server).create_user(who, password)
    return {CREDENTIALS[0]: who, CREDENTIALS[1]: password}


@pytest.mark.parametrize("experiment", ["new", "the admin's"])
def test_a_read_only_users_sweep_writes_nothing(mlflow_server, tmp_path, experiment):
    """The sweep asks the server what its user may write before anything else: refused in
    one line naming the user and what it lacks, with no Optuna study, no MLflow experiment,
    run or model version made (basic-auth would let it create a new experiment, then refuse
    the champion's registered model only after the trials)."""
    admin = MlflowClient(mlflow_server)
    model = "recsys-mf-synthetic"  # the champion's; the admin's (earlier sweeps or here)
    if not admin.search_registered_models(f"name = '{model}'"):
        admin.create_registered_model(model)
    versions = len(admin.search_model_versions(f"name = '{model}'"))
    name = f"readonly-{uuid.uuid4().hex[:8]}"
    if experiment != "new":
        admin.create_experiment(name)
    env = _signed_in_as_a_reader(mlflow_server)
    data = write_folder(tmp_path / "data", synthetic_ratings())
    journal = tmp_path / "journal.log"
    flags = ["--dataset", "synthetic", "--data-dir", str(data), "--max-epochs", "1"]
    flags += ["--trials", "1", "--timeout", "0", "--storage", str(journal)]
    flags += ["--study-name", name, "--experiment", name, "--tracking-uri", mlflow_server]
    sweep = start(tmp_path, "reader", *flags, env=env)
    assert sweep.wait() == 2, sweep.stderr
    errors = [line for line in sweep.lines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), sweep.stderr
    assert f"MLflow user {env[CREDENTIALS[0]]!r}" in errors[0] and "lacks EDIT" in errors[0]
    assert f"registered model {model!r} (holds READ)" in errors[0]
    assert (f"experiment {name!r} (holds READ)" in errors[0]) is (experiment != "new")
    assert not journal.exists()  # no Optuna study
    found = admin.get_experiment_by_name(name)
    if experiment == "new":
        assert found is None
    else:
        assert admin.search_runs([found.experiment_id]) == []
    assert len(admin.search_model_versions(f"name = '{model}'")) == versions


def test_a_client_the_server_refuses_is_one_line(mlflow_server, monkeypatch):
    from bench.errors import BenchError
    from bench.tracking.permissions import require_writes

    monkeypatch.setenv(CREDENTIALS[0], "admin")
    monkeypatch.setenv(CREDENTIALS[1], "not-the-password")
    with pytest.raises(BenchError, match="refused the credentials of user 'admin' \\(401\\)"):
        require_writes(mlflow_server, ["any"], [])
    for name in CREDENTIALS:
        monkeypatch.delenv(name)
    with pytest.raises(BenchError, match="refused a client without credentials \\(401\\)"):
        require_writes(mlflow_server, ["any"], [])


def test_a_grant_of_edit_lets_a_user_write_anothers_model(mlflow_server, monkeypatch):
    from bench.errors import BenchError
    from bench.tracking.permissions import require_writes

    model = f"security-granted-{uuid.uuid4().hex[:8]}"
    MlflowClient(mlflow_server).create_registered_model(model)  # the admin's
    credentials = _signed_in_as_a_reader(mlflow_server)
    who = credentials[CREDENTIALS[0]]
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BenchError, match=f"lacks EDIT on registered model '{model}'"):
        require_writes(mlflow_server, [], [model])
    require_writes(mlflow_server, [f"new-{model}"], [f"new-{model}"])  # its own to create
    monkeypatch.undo()
    auth = get_app_client("basic-auth", tracking_uri=mlflow_server)
    auth.grant_user_permission(who, "registered_model", model, "EDIT")
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    require_writes(mlflow_server, [], [model])
