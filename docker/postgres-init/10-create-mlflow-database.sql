-- Runs once, when the postgres-data volume is first initialised (as POSTGRES_USER=mmlw).
-- MMLW's own tables live in database `mmlw` (created from POSTGRES_DB);
-- the MLflow server keeps runs and the model registry in `mlflow`.
CREATE DATABASE mlflow OWNER mmlw;
