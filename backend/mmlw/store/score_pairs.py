"""The batches two model versions of one machine both scored, side by side: what the
champion-vs-shadow-challenger comparison reads (one query, a self-join of the scores)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import aliased

from mmlw.store.database import Database
from mmlw.store.scores import StoredScores, stored_scores
from mmlw.store.tables import ReadingBatch, ScoreBatch, readings_of

__all__ = ["paired_scores"]


def paired_scores(
    database: Database,
    machine_id: str,
    champion_version: int,
    challenger_version: int,
    start: datetime | None = None,
    end: datetime | None = None,
    limit_batches: int = 10_000,
    last_n: int | None = None,
) -> list[tuple[StoredScores, StoredScores]]:
    """The batches overlapping ``[start, end)`` that the champion ``champion_version``
    and the challenger ``challenger_version`` both scored, as (champion, challenger)
    pairs, oldest first; ``last_n`` as in :meth:`~mmlw.store.scores.ScoresRepository.query`
    (only the newest batches holding the newest ``last_n`` readings, two batches more)."""
    champion = aliased(ScoreBatch)
    challenger = aliased(ScoreBatch)
    query = (
        select(champion, challenger, ReadingBatch.timestamps_us)
        .join(challenger, challenger.batch_id == champion.batch_id)
        .join(ReadingBatch, readings_of(champion, ReadingBatch))
        .where(
            champion.machine_id == machine_id,
            champion.role == "champion",
            champion.model_version == champion_version,
            challenger.role == "challenger",
            challenger.model_version == challenger_version,
        )
    )
    if start is not None:
        query = query.where(champion.t_end >= start)
    if end is not None:
        query = query.where(champion.t_start < end)
    query = query.order_by(champion.t_start.desc()).limit(limit_batches)
    out: list[tuple[StoredScores, StoredScores]] = []
    count = 0
    with database.session() as session:
        for champ, chal, stamps in session.execute(query.execution_options(yield_per=100)):
            out.append((stored_scores(champ, stamps), stored_scores(chal, stamps)))
            count += champ.n
            if last_n is not None and count >= last_n + 2 * champ.n:
                break
    out.reverse()
    return out
