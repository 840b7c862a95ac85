"""One line saying how a shadow challenger compares with the champion, for the machine
and models pages (pure: API data in, text out)."""

from __future__ import annotations

from mmlw.schemas.shadow import ShadowComparisonOut

__all__ = ["shadow_summary"]


def shadow_summary(comparison: ShadowComparisonOut) -> str:
    """Flagged by each and disagreements on the readings both scored, or why there are
    none.

    >>> from mmlw.schemas.shadow import ShadowSummaryOut
    >>> summary = ShadowSummaryOut(n_compared=200, champion_flagged=4, challenger_flagged=1,
    ...     disagreements=3, champion_mean=0.5, challenger_mean=0.4, correlation=0.95)
    >>> shadow_summary(ShadowComparisonOut(machine_id="m", champion_version=1,
    ...     challenger_version=2, summary=summary, timestamps=[], champion_scores=[],
    ...     challenger_scores=[], champion_thresholds=[], challenger_thresholds=[],
    ...     champion_flags=[], challenger_flags=[]))
    'challenger v2 (shadow) vs champion v1 on 200 readings: challenger flags 1, champion 4, they disagree on 3 (1.5%), score correlation 0.950'
    """  # noqa: E501
    s = comparison.summary
    who = f"challenger v{comparison.challenger_version} (shadow)"
    if s.n_compared == 0:
        if comparison.challenger_version is None:
            return f"no shadow challenger ({comparison.reason or 'none'})"
        return f"{who}: {comparison.reason or 'no reading scored by both yet'}"
    text = (
        f"{who} vs champion v{comparison.champion_version} on {s.n_compared:,} readings: "
        f"challenger flags {s.challenger_flagged:,}, champion {s.champion_flagged:,}, "
        f"they disagree on {s.disagreements:,} ({s.disagreements / s.n_compared:.1%})"
    )
    if s.correlation is not None:
        text += f", score correlation {s.correlation:.3f}"
    return text
