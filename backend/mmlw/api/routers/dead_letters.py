"""Dead letters: list, inspect, replay (optionally with a fixed body) and purge.

Purging is ``POST /dead-letters/purge`` with a JSON body rather than ``DELETE`` with a
query: it takes a list of ids as well as a cut-off, and a body on ``DELETE`` is poorly
supported by clients and proxies.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from mmlw.api.deps import ROW_ID_MAX, SettingsDep, StateDep, StoreDep, row_limit
from mmlw.errors import ConflictError
from mmlw.messaging.dead_queue import DeadQueue
from mmlw.schemas.dead_letters import (
    DeadLetterDetail,
    DeadLetterItem,
    DeadLetterSummary,
    Purged,
    ReplayAccepted,
)
from mmlw.schemas.readings import UtcDatetime
from mmlw.services.dead_letters import purge, replay
from mmlw.store import DeadLetterOut
from mmlw.store.dead_letters import PREVIEW_BYTES

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

DeadLetterId = Annotated[int, Path(ge=1, le=ROW_ID_MAX, description="dead letter id")]


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str | None = Field(
        default=None, description="a fixed readings message (JSON, as a string) to send instead"
    )


class PurgeRequest(BaseModel):
    """Which dead letters to delete: ``all``, or those matching every criterion given."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    ids: list[Annotated[int, Field(ge=1, le=ROW_ID_MAX)]] | None = None
    older_than: UtcDatetime | None = Field(default=None, description="received before")


def _summary(d: DeadLetterOut) -> dict[str, Any]:
    return DeadLetterSummary.model_validate(d).model_dump()


def _item(d: DeadLetterOut) -> DeadLetterItem:
    return DeadLetterItem(
        **_summary(d),
        body_preview=d.body[:PREVIEW_BYTES].decode("utf-8", errors="replace"),
        body_bytes=d.body_size,
        body_sha256=d.body_sha256,
        body_truncated=d.truncated,
    )


def _detail(d: DeadLetterOut) -> DeadLetterDetail:
    body, encoding = d.decoded_body()
    return DeadLetterDetail(
        **_summary(d),
        headers=d.headers,
        body=body,
        body_encoding=encoding,
        body_bytes=d.body_size,
        body_kept_bytes=d.body_kept,
        body_sha256=d.body_sha256,
        body_truncated=d.truncated,
    )


@router.get("")
def list_dead_letters(
    store: StoreDep,
    limit: Annotated[int, row_limit(100, 1000)],
    include_replayed: bool = True,
) -> list[DeadLetterItem]:
    """Rejected messages, newest first, with the reason each was rejected (bodies are not
    loaded: a preview, size and digest of each)."""
    listed = store.dead_letters.list(limit, include_replayed=include_replayed, bodies=False)
    return [_item(d) for d in listed]


@router.post("/purge")
def purge_dead_letters(request: PurgeRequest, store: StoreDep, settings: SettingsDep) -> Purged:
    """Delete dead letters: ``{"all": true}``, or by ``ids`` and/or ``older_than``; their
    copies in ``<ns>.dead`` go too (and any an earlier purge could not reach)."""
    if not request.all and request.ids is None and request.older_than is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="purge: give all=true, ids or older_than",
        )
    older_than = request.older_than
    if older_than is not None and older_than.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="older_than: a timezone is required (e.g. ...Z)",
        )
    done = purge(
        store,
        request.ids,
        older_than=older_than,
        everything=request.all,
        dead_queue=DeadQueue.from_settings(settings.broker),
    )
    return Purged(purged=done.count)


@router.get("/{dead_letter_id}")
def get_dead_letter(dead_letter_id: DeadLetterId, store: StoreDep) -> DeadLetterDetail:
    """One dead letter whole, with what was kept of its body."""
    return _detail(store.dead_letters.get(dead_letter_id))


@router.post("/{dead_letter_id}/replay", status_code=status.HTTP_202_ACCEPTED)
def replay_dead_letter(
    dead_letter_id: DeadLetterId,
    state: StateDep,
    settings: SettingsDep,
    request: Annotated[ReplayRequest | None, Body()] = None,
) -> ReplayAccepted:
    """Publish the dead letter again (or the fixed ``body``) through the readings exchange.

    202: the broker took it and it is marked replayed; ingest follows asynchronously.
    422 naming the field if the message is still invalid (then it is not marked); 409 if
    only the beginning of its body was kept and no fixed ``body`` is given.
    """
    override = None if request is None or request.body is None else request.body.encode()
    if override is None:
        kept = state.store.dead_letters.get(dead_letter_id)
        if kept.truncated:
            raise ConflictError(
                f"dead letter {dead_letter_id}: only the first {kept.body_kept} of its "
                f"{kept.body_size} bytes were kept (MMLW_BROKER__DEAD_LETTER_BODY_KIB), so "
                "the message is incomplete and cannot be replayed; send a fixed body instead"
            )
    done = replay(
        dead_letter_id,
        store=state.store,
        publisher=state.publisher,
        body_override=override,
        max_readings=settings.broker.max_batch_readings,
        dead_queue=DeadQueue.from_settings(settings.broker),
    )
    return ReplayAccepted(
        id=done.dead_letter.id,
        message_id=str(done.batch.message_id),
        machine_id=done.batch.machine_id,
        readings=len(done.batch),
        replayed_at=done.dead_letter.replayed_at,
        replay_count=done.dead_letter.replay_count,
    )
