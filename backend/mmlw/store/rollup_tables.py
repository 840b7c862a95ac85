"""The rollup tables (migration 0013): aggregates of readings and scores per time bucket,
kept longer than the raw batches they summarise.

A bucket is ``[bucket, bucket + period_s)``, aligned to the Unix epoch (minutes and hours
of UTC). Readings keep ``total`` (the sum), not the mean: adding a batch to a bucket is
then a sum, exact whatever the order batches arrive in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mmlw.store.tables import Base

__all__ = ["ReadingRollupRow", "ScoreRollupRow"]


class ReadingRollupRow(Base):
    """One sensor of one machine over one bucket: how many readings, their sum, min, max."""

    __tablename__ = "reading_rollups"
    __table_args__ = (Index("ix_reading_rollups_period_bucket", "period_s", "bucket"),)

    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    sensor: Mapped[str] = mapped_column(String(128), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[float] = mapped_column(Float)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)


class ScoreRollupRow(Base):
    """One machine's scores of one role over one bucket: how many, how many flagged, the
    lowest and highest score and when, and the threshold and model version of the
    highest (what a plot of the bucket needs to show its anomaly)."""

    __tablename__ = "score_rollups"
    __table_args__ = (Index("ix_score_rollups_period_bucket", "period_s", "bucket"),)

    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    period_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    n_flagged: Mapped[int] = mapped_column(BigInteger)
    score_min: Mapped[float] = mapped_column(Float)
    min_at: Mapped[datetime]
    score_max: Mapped[float] = mapped_column(Float)
    max_at: Mapped[datetime]
    threshold: Mapped[float] = mapped_column(Float)
    model_version: Mapped[int] = mapped_column(Integer)
