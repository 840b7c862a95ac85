"""What the API returns when it compares a machine's champion with its shadow challenger
on the readings both scored (``GET /machines/{id}/scores/compare``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mmlw.schemas.readings import UtcDatetime

__all__ = ["ShadowComparisonOut", "ShadowSummaryOut"]


class ShadowSummaryOut(BaseModel):
    """Over every reading compared (before any downsampling of the series).

    ``correlation`` (Pearson, of the two scores) is None below two readings or when
    either score is constant; the means are None when nothing was compared."""

    model_config = ConfigDict(frozen=True)

    n_compared: int
    champion_flagged: int
    challenger_flagged: int
    disagreements: int
    champion_mean: float | None
    challenger_mean: float | None
    correlation: float | None


class ShadowComparisonOut(BaseModel):
    """Champion and challenger scores aligned by reading, oldest first.

    Empty series with a ``reason`` when there is nothing to compare (no champion, no
    challenger, or no reading scored by both in range)."""

    machine_id: str
    champion_version: int | None
    challenger_version: int | None
    reason: str | None = None
    summary: ShadowSummaryOut
    timestamps: list[UtcDatetime]
    champion_scores: list[float]
    challenger_scores: list[float]
    champion_thresholds: list[float]
    challenger_thresholds: list[float]
    champion_flags: list[bool]
    challenger_flags: list[bool]
