"""Offline evaluation harness: SKAB/NAB-layout datasets, the SKAB protocol, metrics, reports.

Nothing here runs at import time; modules are imported by ``mmlw evaluate`` on demand.
"""
