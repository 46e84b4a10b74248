# syntax=docker/dockerfile:1
# mlflow server with the basic-auth app, the PostgreSQL driver and the S3 client, at the versions
# uv.lock pins (its `mlflow-server` group), installed as the app image installs HeartEye: `uv sync
# --frozen`, every file checked against the lock's hashes (build context: the repository root;
# mlflow.Dockerfile.dockerignore keeps it small). Wheels only (--no-build): the runtime image has
# no compiler.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && python -m venv /opt/venv \
    && uv sync --frozen --only-group mlflow-server --no-build --inexact

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /tmp --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
COPY infra/mlflow/entrypoint.sh infra/mlflow/mlflow_users.py /opt/hearteye/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MLFLOW_AUTH_CONFIG_PATH=/tmp/mlflow/basic_auth.ini
USER 10001:10001
EXPOSE 5000
ENTRYPOINT ["/opt/hearteye/entrypoint.sh"]
CMD ["--host=0.0.0.0", "--port=5000", "--workers=1"]
