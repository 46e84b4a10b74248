# syntax=docker/dockerfile:1
# mlflow server with the basic-auth app, the PostgreSQL driver and the S3 client (build context:
# infra/). Wheels only: the runtime image has no compiler.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir \
        "mlflow[auth]==3.17.2" "psycopg2-binary==2.9.13" "boto3==1.44.8"

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /tmp --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
COPY mlflow/entrypoint.sh mlflow/mlflow_users.py /opt/hearteye/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MLFLOW_AUTH_CONFIG_PATH=/tmp/mlflow/basic_auth.ini
USER 10001:10001
EXPOSE 5000
ENTRYPOINT ["/opt/hearteye/entrypoint.sh"]
CMD ["--host=0.0.0.0", "--port=5000", "--workers=1"]
