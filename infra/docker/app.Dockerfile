# syntax=docker/dockerfile:1
# HeartEye (serving tier and trainer): this project installed into a virtualenv (build context:
# the repository root; app.Dockerfile.dockerignore keeps the context small).

FROM python:3.11-slim-bookworm AS build
# numba's cache of the compiled preprocessing kernels: its own directory, because the runtime user
# cannot write the package's __pycache__ (numba then ignores the cache there and recompiles).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY hearteye ./hearteye
COPY hearteye_platform ./hearteye_platform
COPY training ./training
COPY serving ./serving
COPY cli ./cli
# torch==2.13.0 exists as a CPU-only wheel on PyTorch's CPU index; PyPI alone would bring CUDA.
# Then the preprocessing's numba kernels and the serving's JSON signal parser are compiled into
# NUMBA_CACHE_DIR, once, here.
RUN /opt/venv/bin/pip install --no-cache-dir \
        --extra-index-url https://download.pytorch.org/whl/cpu . \
    && /opt/venv/bin/python -m hearteye.preprocess.warmup \
    && /opt/venv/bin/python -m serving.signal_json

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 hearteye \
    && useradd --system --uid 10001 --gid hearteye --home-dir /var/lib/hearteye \
        --create-home --shell /usr/sbin/nologin hearteye
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
