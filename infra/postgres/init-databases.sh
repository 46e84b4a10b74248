#!/bin/sh
# The HeartEye databases and the platform database's two roles: one bootstrap for both forms of
# the stack. The PostgreSQL image runs it once, on an empty data directory
# (/docker-entrypoint-initdb.d, over its socket as POSTGRES_USER); the native stack runs it against
# the machine's server (infra/native/stack_services.py: libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD
# name the admin connection). Idempotent (CREATE only what is missing; passwords are set from the
# environment every time).
#
#   HEARTEYE_MLFLOW_DB, HEARTEYE_MLFLOW_AUTH_DB   MLflow's store and its auth database, owned by
#                                                 POSTGRES_USER
#   HEARTEYE_PLATFORM_DB                          users and the prediction audit trail, owned by
#                                                 HEARTEYE_PLATFORM_DB_OWNER (runs the migrations)
#   HEARTEYE_PLATFORM_DB_APP_ROLE                 serving's runtime role: may connect to the
#                                                 platform database only; the migrations give it
#                                                 INSERT/SELECT on the audit trail, nothing more
#
# Neither platform role is a superuser; nobody else (PUBLIC) may connect to any of the databases.
# The variables are hearteye_platform.deployment.DeploymentSettings' (declared and checked there).
set -eu

psql_admin() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${PGUSER:-$POSTGRES_USER}" \
    --dbname postgres "$@"
}

for spec in "$HEARTEYE_PLATFORM_DB_OWNER:$HEARTEYE_PLATFORM_DB_OWNER_PASSWORD" \
            "$HEARTEYE_PLATFORM_DB_APP_ROLE:$HEARTEYE_PLATFORM_DB_APP_PASSWORD"; do
  psql_admin -v role="${spec%%:*}" -v password="${spec#*:}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password')
\gexec
SQL
done

for spec in "$HEARTEYE_MLFLOW_DB:$POSTGRES_USER" "$HEARTEYE_MLFLOW_AUTH_DB:$POSTGRES_USER" \
            "$HEARTEYE_PLATFORM_DB:$HEARTEYE_PLATFORM_DB_OWNER"; do
  psql_admin -v db="${spec%%:*}" -v owner="${spec#*:}" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', :'db', :'owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')
\gexec
SQL
done

psql_admin -v db="$HEARTEYE_PLATFORM_DB" -v role="$HEARTEYE_PLATFORM_DB_APP_ROLE" <<'SQL'
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'role')
\gexec
SQL
