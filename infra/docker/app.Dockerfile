# syntax=docker/dockerfile:1
# HeartEye (serving tier and trainer): this project installed into a virtualenv (build context:
# the repository root; app.Dockerfile.dockerignore keeps the context small).

FROM python:3.11-slim-bookworm AS build
# numba's cache of the compiled preprocessing kernels: its own directory, because the runtime user
# cannot write the package's __pycache__ (numba then ignores the cache there and recompiles).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy
WORKDIR /src
# uv in the build stage only; torch==2.13.0+cpu (uv.lock's pin) from PyTorch's CPU index, where
# it exists as a CPU-only wheel (PyPI's torch brings CUDA), without its dependencies: uv installs
# those, and everything else, at the versions uv.lock pins.
RUN pip install --no-cache-dir uv==0.13.9 \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps \
        --index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu
COPY pyproject.toml uv.lock README.md ./
COPY hearteye ./hearteye
COPY hearteye_platform ./hearteye_platform
COPY training ./training
COPY serving ./serving
COPY cli ./cli
# The lock as it is (--frozen), HeartEye itself as a regular package (--no-editable); then the
# preprocessing's numba kernels and the serving's JSON signal parser are compiled into
# NUMBA_CACHE_DIR, once, here.
RUN uv sync --frozen --no-editable --inexact --no-default-groups --no-install-package torch \
    && /opt/venv/bin/python -m hearteye.preprocess.warmup \
    && /opt/venv/bin/python -m serving.signal_json

FROM python:3.11-slim-bookworm
# /var/lib/hearteye-wake: compose mounts the replicas' shared webhook wake volume there; a new
# volume takes this directory's owner.
RUN groupadd --system --gid 10001 hearteye \
    && useradd --system --uid 10001 --gid hearteye --home-dir /var/lib/hearteye \
        --create-home --shell /usr/sbin/nologin hearteye \
    && install -d -o 10001 -g 10001 /var/lib/hearteye-wake
COPY --from=build /opt/venv /opt/venv
# Writable by the runtime user: on a host CPU other than the build's, numba recompiles into it.
COPY --from=build --chown=10001:10001 /opt/numba-cache /opt/numba-cache
WORKDIR /app
# `gunicorn -c serving/gunicorn.conf.py` reads the config from the working directory.
COPY serving/gunicorn.conf.py serving/gunicorn.conf.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEARTEYE_HOME=/var/lib/hearteye \
    NUMBA_CACHE_DIR=/opt/numba-cache
USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "-c", "serving/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "serving.app:create_app()"]
