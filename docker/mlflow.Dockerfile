# MLflow tracking server + model registry for MMLW (PostgreSQL backend store,
# artifacts served by the server itself), behind MLflow's own login (the basic-auth app).
# docker-compose.yml passes the real --backend-store-uri and the auth settings; the default
# CMD below uses SQLite files so the image also runs alone:
#   docker run -p 5000:5000 -e MLFLOW_AUTH_ADMIN_PASSWORD=<12+ characters> mmlw-mlflow
#   -> UI on http://localhost:5000, user `admin`
# The entrypoint (docker/mlflow-auth-entrypoint.py) writes MLflow's auth ini from the
# environment (MLFLOW_AUTH_* and MLFLOW_SERVICE_*, see that file) and then runs the command.
FROM python:3.11.11-slim

# Keep in step with the mlflow client the MMLW images install (pyproject.toml: mlflow>=3.1,<4);
# the server must be at least as new as its clients. >=3.5 is needed for --allowed-hosts.
ARG MLFLOW_VERSION=3.17.2

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

# [auth]: Flask-WTF, which `mlflow server --app-name basic-auth` needs.
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" "psycopg[binary]>=3.2,<4"

COPY --chmod=0755 docker/mlflow-auth-entrypoint.py /usr/local/bin/mlflow-auth-entrypoint

# /mlartifacts is created owned by the server's user, so a fresh named volume
# mounted there inherits that ownership.
RUN useradd --system --uid 10002 --user-group --home-dir /var/lib/mlflow --create-home mlflow \
    && mkdir /mlartifacts && chown mlflow:mlflow /mlartifacts
USER mlflow
WORKDIR /var/lib/mlflow
VOLUME ["/mlartifacts"]

EXPOSE 5000
# /health answers without a login (MLflow's auth app leaves it open).
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=12 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:5000/health', timeout=5)"]
ENTRYPOINT ["mlflow-auth-entrypoint"]
CMD ["mlflow", "server", "--app-name", "basic-auth", "--host", "0.0.0.0", "--port", "5000", \
     "--backend-store-uri", "sqlite:////var/lib/mlflow/mlflow.db", \
     "--artifacts-destination", "/mlartifacts", "--serve-artifacts", "--workers", "1"]
