#!/bin/sh
# PostgreSQL image init script (runs once, on an empty data directory): the three HeartEye
# databases, owned by POSTGRES_USER. Idempotent all the same (CREATE only what is missing).
set -eu

for db in "$HEARTEYE_MLFLOW_DB" "$HEARTEYE_MLFLOW_AUTH_DB" "$HEARTEYE_PLATFORM_DB"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', current_user)
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
SQL
done
