# MMLW dashboard: the Dash app served by uvicorn (`mmlw dashboard`); reads only the API.
# Build from the repository root:  docker build -f docker/dashboard.Dockerfile -t mmlw-dashboard .
FROM python:3.11.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MMLW_DASHBOARD__HOST=0.0.0.0 \
    MMLW_DASHBOARD__PORT=8050

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
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/mmlw --create-home mmlw
USER mmlw

EXPOSE 8050
HEALTHCHECK --interval=10s --timeout=10s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8050/health', timeout=5)"]
CMD ["mmlw", "dashboard"]
