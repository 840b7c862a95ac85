"""Prometheus metrics: per-process instruments and the store/broker-derived totals."""
