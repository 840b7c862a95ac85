"""Scoring a series whose detector stops learning while it is in alarm.

A detector built on :class:`HeldAlarms` provides ``_pass(X, state, learn)``: the
per-sensor terms, the surprise (anomaly likelihood, ``-log10``) and the deviations from
the pre-alarm level of rows ``X`` scored from ``state`` (two columns: each reading's and
the fast level's), and the state after them — learning from the rows, or (``learn``
False) holding everything but the fast level. :meth:`HeldAlarms._score` then runs a
series as one vectorised pass per segment of constant alarm state, splitting where an
alarm starts (a row above ``floor`` after warm-up) or ends (:meth:`HeldAlarms._back`: the
readings back near the pre-alarm level, or the alarm outlasting ``regime_rows``), so
scoring in any batching gives the same result as row by row. The carry holds the scored
state, a copy that kept learning during the alarm (``shadow.`` keys) and the alarm's flag,
length and peak deviation, all as arrays.

When are the readings back? Always when one reading is within ``release`` of the
pre-alarm level on every sensor, and that reading settles it when the alarm's readings
(the one that raised it included) were once far beyond (``large_shift`` times
``release``): a spike, a large shift or a stuck sensor that returns is plainly over. So
it does in the alarm's first ``level_release_after`` rows after a reading beyond
``release``: a stream's short bursts stay blips. A small shift is another matter: on a
sensor read in whole units, a fault that moves it from 32-33 to 31-32 shows one
normal-looking reading in two and never one beyond ``release``, and releasing at the
first of them left SKAB's valve faults alerted for 25-40 of their 300-400 rows. Any
other alarm (a small shift, or a medium one past its first rows) also needs the fast
level (the short average of the readings) back within ``level_release``, in the level's
own spreads. ``level_release`` 0 turns this off, and models saved before it existed
score as they did.
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
#: the alarm's own keys in a carry: its flag, length and peak deviation
_ALARM_KEYS = ("alarm", "alarm_rows", "alarm_peak")
#: rows of the first pass after the alarm state changes (doubled while it holds)
_FIRST_CHUNK = 256

Pass = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


class HeldAlarms:
    """The segmenting scorer (see the module docstring); mixed into a detector that sets
    ``floor``, ``release``, ``hold``, ``regime_rows``, ``blip_rows`` and ``n_fit_`` (and
    ``level_release``, ``large_shift`` and ``level_release_after``, or they are off)."""

    floor: Any
    release: Any
    large_shift: Any
    level_release_after: Any
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
        state: Carry,
        *,
        alarm: float,
        alarm_rows: float,
        shadow: Carry | None = None,
        peak: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """A carry: the scored state, its learning copy (the same outside an alarm) and
        the alarm's flag, length and peak deviation."""
        shadow = state if shadow is None else shadow
        carry = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        carry.update({SHADOW + k: np.asarray(v, dtype=np.float64) for k, v in shadow.items()})
        carry["alarm"] = np.array(float(alarm))
        carry["alarm_rows"] = np.array(float(alarm_rows))
        carry["alarm_peak"] = np.array(float(peak))
        return carry

    @staticmethod
    def _split(carry: Carry) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        scored = {k: v for k, v in carry.items() if not k.startswith(SHADOW)}
        for key in _ALARM_KEYS:
            scored.pop(key, None)
        shadow = {k[len(SHADOW) :]: v for k, v in carry.items() if k.startswith(SHADOW)}
        return scored, shadow

    def _back(self, dev: np.ndarray, alarm_rows: float, peak: float) -> np.ndarray:
        """Which rows of an alarm (``dev``: each row's reading and fast-level deviation,
        the alarm ``alarm_rows`` long and ``peak`` deviation so far before them) find the
        readings back (see the module docstring)."""
        release = float(self.release)
        back: np.ndarray = dev[:, 0] < release
        level_release = float(getattr(self, "level_release", 0.0))
        if level_release <= 0.0:
            return back
        peaks = np.maximum.accumulate(np.r_[peak, dev[:-1, 0]])
        after = int(self.level_release_after)
        # a reading beyond release and now one back: over in the alarm's first rows (a
        # burst), and at once after a large shift; a small shift needs the average back
        burst = (peaks >= release) & (alarm_rows + np.arange(len(dev)) < after)
        large = peaks >= float(self.large_shift) * release
        return back & ((dev[:, 1] < level_release) | large | burst)

    def _score(self, X: np.ndarray, carry: Carry) -> tuple[np.ndarray, Carry]:
        """Score ``X`` in segments of constant alarm state (see the module docstring): each
        segment is one vectorised pass, split where an alarm starts or ends."""
        n, m = X.shape
        terms = np.zeros((n, m))
        surprise = np.zeros(n)
        state, shadow = self._split(carry)
        alarm, alarm_rows = float(carry["alarm"]), float(carry["alarm_rows"])
        peak = float(carry.get("alarm_peak", 0.0))
        hold, floor = bool(self.hold), float(self.floor)
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
                part, part_surprise, dev, after = self._pass(rest, state, learn=True)
                hits = np.flatnonzero(warm & (part_surprise > floor) & hold)
                stop = int(hits[0]) + 1 if len(hits) else len(rest)
                terms[i : i + stop], surprise[i : i + stop] = part[:stop], part_surprise[:stop]
                if len(hits):
                    # an alarm starts after this row: the state learned up to it
                    if stop < len(rest):
                        after = self._pass(rest[:stop], state, learn=True)[3]
                    # its peak starts at the reading that raised it (a spike's only one)
                    alarm, alarm_rows, peak = 1.0, 0.0, float(dev[stop - 1, 0])
                state = shadow = after
            else:
                part, part_surprise, dev, after = self._pass(rest, state, learn=False)
                ends = np.flatnonzero(self._back(dev, alarm_rows, peak))
                end = int(ends[0]) if len(ends) else len(rest)
                accept = int(self.regime_rows) - int(alarm_rows) - 1
                stop = min(end, accept, len(rest) - 1) + 1
                peak = max(peak, float(dev[:stop, 0].max()))
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
                    alarm, peak = 0.0, 0.0
                elif accept == stop - 1:
                    # the alarm outlasted regime_rows: its readings are the new normal
                    state = shadow = self._pass(rest[:stop], shadow, learn=True)[3]
                    alarm, peak = 0.0, 0.0
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
            state, alarm=alarm, alarm_rows=alarm_rows, shadow=shadow, peak=peak
        )
