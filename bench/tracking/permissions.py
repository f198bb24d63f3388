"""What an MLflow server lets a command's user write, asked before the command writes.

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) lets every signed-in user
create experiments and registered models (the creator then holds MANAGE on them) and read
whatever its `default_permission` allows; writing into an experiment or a registered model
that someone else created needs EDIT or MANAGE on it, which the admin grants (the admin
writes everything). A refused write is found out at that write: for a sweep, after it created
its Optuna study and trained. So a command asks the server first, for each existing
experiment and registered model it will write, what its user holds there
(`/api/3.0/mlflow/users/permissions/get`, which a user may ask about itself), and refuses in
one line. Stores other than a server, and servers without the auth app (404), pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from bench.errors import BenchError

CURRENT_USER = "/api/2.0/mlflow/users/current"  # who the server takes this client for
USER_PERMISSION = "/api/3.0/mlflow/users/permissions/get"  # a user's effective permission
WRITERS = ("EDIT", "MANAGE")  # the permissions that write into an experiment or a model
DOCS = "docs/several-machines.md#the-tracking-server"
MISSING = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def require_writes(uri: str, experiments: Iterable[str], models: Iterable[str]) -> None:
    """Refuse, in one line naming the user and what it lacks, a command whose MLflow user
    may not write the existing `experiments` and registered `models` it will write (new
    ones every signed-in user may create)."""
    if not uri.startswith(("http://", "https://")):
        return
    user = signed_in(uri)
    if user is None or user.get("is_admin"):
        return
    name = user["username"]
    lacking = [
        f"{kind.replace('_', ' ')} {label!r} (holds {held})"
        for kind, label, key in existing(MlflowClient(uri), experiments, models)
        if (held := permission(uri, name, kind, key)) not in (*WRITERS, None)
    ]
    if lacking:
        raise BenchError(
            f"MLflow user {name!r} at {uri} lacks EDIT on {' and on '.join(lacking)}, which "
            f"this command writes; ask the server's admin to grant {name!r} EDIT there, or "
            f"sign in as a user who may write it ({DOCS})"
        )


def _get(uri: str, path: str, **params: str):
    """One GET of the server's REST API with this client's credentials, not retried."""
    try:
        return http_request(get_default_host_creds(uri), path, "GET", params=params, max_retries=0)
    except MlflowException as exc:
        reason = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"cannot reach the MLflow server {uri} ({reason}); check --tracking-uri (or "
            "MLFLOW_TRACKING_URI) and that the server runs"
        ) from exc


def signed_in(uri: str) -> dict | None:
    """The server's record of this client's user (`username`, `is_admin`); None without
    the auth app. Credentials it refuses are one error line."""
    response = _get(uri, CURRENT_USER)
    if response.status_code == 401:
        who = get_default_host_creds(uri).username
        raise BenchError(
            f"the MLflow server {uri} refused "
            + (f"the credentials of user {who!r}" if who else "a client without credentials")
            + " (401); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
            f"~/.mlflow/credentials, to a user of that server ({DOCS})"
        )
    if response.status_code != 200 or "json" not in response.headers.get("Content-Type", ""):
        return None
    return response.json().get("user")


def existing(
    client: MlflowClient, experiments: Iterable[str], models: Iterable[str]
) -> Iterator[tuple[str, str, str]]:
    """(resource type, name, id) of each of `experiments` and registered `models` that
    exists."""
    for name in experiments:
        if (found := client.get_experiment_by_name(name)) is not None:
            yield "experiment", name, found.experiment_id
    for name in models:
        try:
            client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != MISSING:
                raise
            continue
        yield "registered_model", name, name


def permission(uri: str, username: str, kind: str, key: str) -> str | None:
    """The permission `username` holds on resource `key` of type `kind` (`experiment`,
    `registered_model`); None where the server cannot say (an older MLflow)."""
    params = {"username": username, "resource_type": kind, "resource_id": key}
    response = _get(uri, USER_PERMISSION, **params)
    return response.json().get("permission") if response.status_code == 200 else None
