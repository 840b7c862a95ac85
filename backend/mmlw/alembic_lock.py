"""One Alembic run at a time in a process.

Alembic keeps the running migration's context in module globals (``alembic.context``,
``alembic.op``): two migrations at once in one process, on any two databases, run each
other's steps or tear down each other's context (``KeyError: 'script'``). Two users of
Alembic live in an MMLW process: MMLW's own schema migrations
(:meth:`mmlw.store.Database.migrate`) and MLflow's SQL tracking store, which creates and
upgrades its schema with Alembic when a process first opens it
(:func:`mmlw.registry.schema_lock.schema_lock`). Both hold this lock while they run.
"""

from __future__ import annotations

import threading

__all__ = ["ALEMBIC_LOCK"]

ALEMBIC_LOCK = threading.RLock()
