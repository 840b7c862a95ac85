"""MMLW: message-broker driven model serving for anomaly detection on machine sensor data.

The ``backend`` package is the domain core (settings, wire contract, store, detectors,
model registry, messaging) plus the HTTP API and the ``mmlw`` command line.
"""

__version__ = "0.1.0"
