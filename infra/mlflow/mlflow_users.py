"""Create MLflow basic-auth users through the admin REST API (stdlib only; idempotent).

Used by compose's one-shot ``mlflow-init`` service and by the native stack launcher:

    MLFLOW_TRACKING_URI=http://mlflow:5000/mlflow \
    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=… \
    HEARTEYE_MLFLOW_READER_PASSWORD=… HEARTEYE_MLFLOW_SERVING_PASSWORD=… \
    python mlflow_users.py

The password variables are ``hearteye_platform.deployment.DeploymentSettings`` fields (declared,
typed and checked there, by the ``config-check`` service that runs before this); the mlflow image
carries no HeartEye, so this script reads them itself.

New users get the server's default permission (READ in HeartEye's auth config). A user that
exists already keeps its password: rotate passwords with MLflow's update-password API.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

#: The non-admin users, each with the variable holding its password.
USERS = {"reader": "HEARTEYE_MLFLOW_READER_PASSWORD", "serving": "HEARTEYE_MLFLOW_SERVING_PASSWORD"}


class UserError(RuntimeError):
    """The server refused to create a user."""


def create_user(tracking_uri: str, admin: tuple[str, str], username: str, password: str) -> bool:
    """Create ``username``; True if created, False if it existed already."""
    token = base64.b64encode(f"{admin[0]}:{admin[1]}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (the tracking server's own URL)
        f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": username, "password": password}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            return True
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if "RESOURCE_ALREADY_EXISTS" in detail:
            return False
        raise UserError(f"creating MLflow user {username!r} failed: {exc.code} {detail}") from exc


def main() -> int:
    env = os.environ
    uri = env["MLFLOW_TRACKING_URI"]
    admin = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    for attempt in range(30):  # the server may still be starting
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):  # noqa: S310
                break
        except OSError:
            if attempt == 29:
                print(f"MLflow at {uri} is not answering", file=sys.stderr)
                return 1
            time.sleep(2)
    for username, variable in USERS.items():
        password = env[variable]
        created = create_user(uri, admin, username, password)
        print(f"MLflow user {username}: {'created' if created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
