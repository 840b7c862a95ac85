"""``mmlw demo``: the whole stack in one process tree on embedded defaults.

A composition root, on top of the layers: it starts the API (:mod:`mmlw.api`), workers
and the ingest consumer (:mod:`mmlw.workers`), the dashboard (:mod:`mmlw.frontend`) and
simulated machines, and judges what they alerted (:mod:`mmlw.demo.alerts`).
"""
