# MMLW background processes. The default command is the Celery worker (`mmlw worker`);
# docker-compose.yml runs the same image as `mmlw ingest` (readings consumer),
# `mmlw simulate` (demo machines) and `mmlw db upgrade` (migrations).
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t mmlw-worker .
FROM python:3.11.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MMLW_DATA_DIR=/var/lib/mmlw

WORKDIR /opt/mmlw

# Dependencies first, in their own layer: editing the code does not reinstall them.
# (Empty package stubs let pip resolve the project's dependencies from pyproject.toml.)
COPY pyproject.toml setup.py README.md requirements.lock ./
RUN mkdir -p backend/mmlw workers/mmlw/workers frontend/mmlw/frontend \
    && touch backend/mmlw/version.py workers/mmlw/workers/__init__.py frontend/mmlw/frontend/__init__.py \
    && pip install --no-cache-dir -c requirements.lock '.[server]' \
    && pip uninstall --yes mmlw \
    && rm -rf backend workers frontend build ./*.egg-info

COPY backend ./backend
COPY workers ./workers
COPY frontend ./frontend
COPY configs ./configs
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# Celery warns when started as root; tasks have no reason to run privileged.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/mmlw --create-home mmlw
USER mmlw

# No HTTP endpoint to probe: compose restarts the worker if it exits, and
# `celery inspect ping` would put load on the broker for every probe.
HEALTHCHECK NONE
# Scale by running more containers (docker compose up --scale worker=N) rather than
# a large --concurrency: each process holds its own model cache.
CMD ["mmlw", "worker", "--queues", "train,predict,notify", "--concurrency", "2"]
