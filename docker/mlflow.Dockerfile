# MLflow tracking server + model registry for MMLW (PostgreSQL backend store,
# artifacts served by the server itself). docker-compose.yml passes the real
# --backend-store-uri; the default CMD below uses a SQLite file so the image also runs alone:
#   docker run -p 5000:5000 mmlw-mlflow     -> UI on http://localhost:5000
FROM python:3.11.11-slim

# Keep in step with the mlflow client the MMLW images install (pyproject.toml: mlflow>=3.1,<4);
# the server must be at least as new as its clients. >=3.5 is needed for --allowed-hosts.
ARG MLFLOW_VERSION=3.17.2

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

RUN pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" "psycopg[binary]>=3.2,<4"

# /mlartifacts is created owned by the server's user, so a fresh named volume
# mounted there inherits that ownership.
RUN useradd --system --uid 10002 --user-group --home-dir /var/lib/mlflow --create-home mlflow \
    && mkdir /mlartifacts && chown mlflow:mlflow /mlartifacts
USER mlflow
WORKDIR /var/lib/mlflow
VOLUME ["/mlartifacts"]

EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=12 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:5000/health', timeout=5)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", \
     "--backend-store-uri", "sqlite:////var/lib/mlflow/mlflow.db", \
     "--artifacts-destination", "/mlartifacts", "--serve-artifacts", "--workers", "1"]
