"""Scoring a series whose detector stops learning while it is in alarm.

A detector built on :class:`HeldAlarms` provides ``_pass(X, state, learn)``: the
per-sensor terms, the surprise (anomaly likelihood, ``-log10``) and the deviation from
the pre-alarm level of rows ``X`` scored from ``state``, and the state after them —
learning from the rows, or (``learn`` False) holding everything but the fast level.
:meth:`HeldAlarms._score` then runs a series as one vectorised pass per segment of
constant alarm state, splitting where an alarm starts (a row above ``floor`` after
warm-up) or ends (a row within ``release`` of the pre-alarm level on every sensor, or the
alarm outlasting ``regime_rows``), so scoring in any batching gives the same result as
row by row. The carry holds the scored state, a copy that kept learning during the alarm
(``shadow.`` keys) and the alarm's flag and length, all as arrays.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mmlw.detectors.base import Carry

__all__ = ["HISTORY", "SHADOW", "HeldAlarms"]

#: the prefix of the learning copy's keys in a carry
SHADOW = "shadow."
#: the score history of the anomaly likelihood
HISTORY = ("mean", "var1", "var2")
#: rows of the first pass after the alarm state changes (doubled while it holds)
_FIRST_CHUNK = 256

Pass = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


class HeldAlarms:
    """The segmenting scorer (see the module docstring); mixed into a detector that sets
    ``floor``, ``release``, ``hold``, ``regime_rows``, ``blip_rows`` and ``n_fit_``."""

    floor: Any
    release: Any
    hold: Any
    regime_rows: Any
    blip_rows: Any
    n_fit_: int
    #: the state's score history, which a blip teaches (see :meth:`_score`)
    history_keys: ClassVar[tuple[str, ...]] = HISTORY

    def _pass(self, X: np.ndarray, state: Carry, learn: bool) -> Pass:
        raise NotImplementedError

    def _after_episode(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state to go on from after an episode (the one before it, held)."""
        return {**state, "level": state["slow"]}

    @staticmethod
    def _with_shadow(
        state: Carry, *, alarm: float, alarm_rows: float, shadow: Carry | None = None
    ) -> dict[str, np.ndarray]:
        """A carry: the scored state, its learning copy (the same outside an alarm) and
        the alarm's flag and length."""
        shadow = state if shadow is None else shadow
        carry = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        carry.update({SHADOW + k: np.asarray(v, dtype=np.float64) for k, v in shadow.items()})
        carry["alarm"] = np.array(float(alarm))
        carry["alarm_rows"] = np.array(float(alarm_rows))
        return carry

    @staticmethod
    def _split(carry: Carry) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        scored = {k: v for k, v in carry.items() if not k.startswith(SHADOW)}
        scored.pop("alarm", None)
        scored.pop("alarm_rows", None)
        shadow = {k[len(SHADOW) :]: v for k, v in carry.items() if k.startswith(SHADOW)}
        return scored, shadow

    def _score(self, X: np.ndarray, carry: Carry) -> tuple[np.ndarray, Carry]:
        """Score ``X`` in segments of constant alarm state (see the module docstring): each
        segment is one vectorised pass, split where an alarm starts or ends."""
        n, m = X.shape
        terms = np.zeros((n, m))
        surprise = np.zeros(n)
        state, shadow = self._split(carry)
        alarm, alarm_rows = float(carry["alarm"]), float(carry["alarm_rows"])
        hold, floor, release = bool(self.hold), float(self.floor), float(self.release)
        i, chunk = 0, _FIRST_CHUNK
        while i < n:
            # a segment ends where the alarm state changes, and what was scored past that
            # row is scored again: a pass covers at most ``chunk`` rows, doubled while the
            # state holds, so a change costs at most that much again (a pass is a
            # recursion: where the rows are cut changes nothing). Passes over all the rest
            # made a backlog of 100,000 rows cost 4-6x as much per row as batches of 1,000.
            rest = X[i : i + chunk]
            warm = float(state["seen"]) + np.arange(len(rest)) >= self.n_fit_
            if not alarm:
                part, part_surprise, _, after = self._pass(rest, state, learn=True)
                hits = np.flatnonzero(warm & (part_surprise > floor) & hold)
                stop = int(hits[0]) + 1 if len(hits) else len(rest)
                terms[i : i + stop], surprise[i : i + stop] = part[:stop], part_surprise[:stop]
                if len(hits):
                    # an alarm starts after this row: the state learned up to it
                    if stop < len(rest):
                        after = self._pass(rest[:stop], state, learn=True)[3]
                    alarm, alarm_rows = 1.0, 0.0
                state = shadow = after
            else:
                part, part_surprise, dev, after = self._pass(rest, state, learn=False)
                ends = np.flatnonzero(dev < release)
                end = int(ends[0]) if len(ends) else len(rest)
                accept = int(self.regime_rows) - int(alarm_rows) - 1
                stop = min(end, accept, len(rest) - 1) + 1
                terms[i : i + stop], surprise[i : i + stop] = part[:stop], part_surprise[:stop]
                if end == stop - 1:
                    # readings are normal again
                    state = self._pass(rest[:stop], state, learn=False)[3]
                    if alarm_rows + stop <= int(self.blip_rows):
                        # a blip: the score history learns how large the stream's blips are
                        learned = self._pass(rest[:stop], shadow, learn=True)[3]
                        state.update({k: learned[k] for k in self.history_keys if k in learned})
                    else:
                        # an episode: nothing of it is learned, the level is where it was
                        state = self._after_episode(state)
                    state = shadow = {**state, "short": state["mean"]}
                    alarm = 0.0
                elif accept == stop - 1:
                    # the alarm outlasted regime_rows: its readings are the new normal
                    state = shadow = self._pass(rest[:stop], shadow, learn=True)[3]
                    alarm = 0.0
                else:
                    # still in alarm: the learning copy follows the rows too
                    state, shadow = after, self._pass(rest, shadow, learn=True)[3]
                    alarm_rows += stop
            i += stop
            chunk = 2 * chunk if stop == len(rest) else _FIRST_CHUNK
        seen = float(carry["seen"]) + np.arange(n)
        score = np.where(seen < self.n_fit_, floor, np.maximum(surprise, floor))
        total = terms.sum(axis=1, keepdims=True)
        share = np.divide(terms, total, out=np.full_like(terms, 1.0 / m), where=total > 0)
        # the excess over the floor shared by the sensors' raw terms, the floor itself put
        # on the largest one: a row at the floor sums to exactly the floor (no rounding
        # that could lift it over a threshold equal to the floor)
        contributions = share * (score - floor)[:, None]
        contributions[np.arange(n), share.argmax(axis=1)] += floor
        return contributions, self._with_shadow(
            state, alarm=alarm, alarm_rows=alarm_rows, shadow=shadow
        )
