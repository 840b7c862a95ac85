"""MMLW: message-broker driven model serving for anomaly detection on machine sensor data.

``mmlw`` is one namespace package laid out in three folders: ``backend/mmlw`` holds the
domain core (settings, wire contract, store, detectors, model registry, messaging, alert
engine, services), the HTTP API and the ``mmlw`` command line; ``workers/mmlw/workers``
the Celery worker, ingest consumer and simulator; ``frontend/mmlw/frontend`` the dashboard.
"""

__version__ = "0.1.0"
