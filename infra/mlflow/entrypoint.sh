#!/bin/sh
# mlflow image entrypoint: writes the basic-auth config (its user database in PostgreSQL) from
# the environment, then runs `mlflow server` with the given flags. The ini has no variables of
# its own, and the admin password stays in MLFLOW_AUTH_ADMIN_PASSWORD, never in the file.
# The credential cache spares each request a PBKDF2 hash (~0.8 s on a small host); with one
# worker per instance, password changes through the API apply at once.
set -eu
: "${HEARTEYE_MLFLOW_AUTH_DATABASE_URI:?the auth database URI}"
: "${MLFLOW_AUTH_CONFIG_PATH:=/tmp/mlflow/basic_auth.ini}"
export MLFLOW_AUTH_CONFIG_PATH
mkdir -p "$(dirname "$MLFLOW_AUTH_CONFIG_PATH")"
umask 077
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = ${HEARTEYE_MLFLOW_AUTH_DATABASE_URI}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
INI
exec mlflow server "$@"
