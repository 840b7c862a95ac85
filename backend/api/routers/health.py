from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from backend import __version__
from backend.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(state: StateDep) -> dict[str, str]:
    """Liveness plus a database round trip; needs no API key."""
    with state.store.database.session() as session:
        session.execute(text("SELECT 1"))
    return {
        "status": "ok",
        "version": __version__,
        "database": state.store.database.dialect,
        "broker": state.settings.broker.url.split("://", 1)[0],
    }
