"""Users and permissions of an mlflow server with authentication (``trackbook serve users/grant``).

Through MLflow's own auth client, with the admin's credentials from
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

from trackbook._uri import redact_uri
from trackbook.errors import AccessDenied


def add_user(url: str, name: str, password: str) -> None:
    """Create the user ``name`` on the server at ``url``.

    Raises:
        AccessDenied: the server refused (the credentials are not the admin's, or the user exists).
    """
    from mlflow.server.auth.client import AuthServiceClient

    with _refusals(url):
        AuthServiceClient(url).create_user(name, password)


def grant(url: str, name: str, experiment: str, permission: str) -> str:
    """Give ``name`` ``permission`` (READ, EDIT, MANAGE, or DENY: none at all) on ``experiment``,
    created if missing; returns the experiment's id.

    Raises:
        AccessDenied: the server refused (the credentials are not the admin's, or no such user).
    """
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.server.auth.permissions import RESOURCE_TYPE_EXPERIMENT
    from mlflow.tracking import MlflowClient

    with _refusals(url):
        tracking = MlflowClient(tracking_uri=url)
        found = tracking.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else tracking.create_experiment(experiment)
        AuthServiceClient(url).grant_user_permission(name, RESOURCE_TYPE_EXPERIMENT, experiment_id, permission)
    return experiment_id


class _refusals:
    """MLflow's refusals as one AccessDenied sentence that names what to check."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        from mlflow.exceptions import MlflowException

        if exc is not None and isinstance(exc, MlflowException):
            raise AccessDenied(
                f"{redact_uri(self.url)} refused: {redact_uri(str(exc).splitlines()[0])}. Are "
                f"MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD the admin's?"
            ) from None
        return False
