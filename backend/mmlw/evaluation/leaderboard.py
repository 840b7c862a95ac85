"""Published SKAB "Proposed Leaderboard" rows (test parts only, 60 s right-hand windows).

Source: /work/shared/data/skab/README.md ("Published results"), itself from the waico/SKAB
README at commit b2c0d46. Missing values are ``None``.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "PUBLISHED"]

COLUMNS = ("f1", "far", "mar", "nab_standard", "nab_lowfp", "nab_lowfn", "missed_cp", "fp_cp")

_OUTLIER = {
    "Perfect detector": (1.0, 0.0, 0.0),
    "Conv-AE": (0.78, 13.55, 28.02),
    "MSET": (0.78, 39.73, 14.13),
    "T-squared+Q (PCA-based)": (0.76, 26.62, 24.92),
    "LSTM-AE": (0.74, 29.96, 25.92),
    "T-squared": (0.66, 19.21, 42.6),
    "LSTM-VAE": (0.56, 9.13, 55.03),
    "Vanilla LSTM": (0.54, 12.54, 59.53),
    "MSCRED": (0.36, 49.94, 69.88),
    "Vanilla AE": (0.39, 2.59, 75.15),
    "Isolation forest": (0.29, 2.56, 82.89),
    "Null detector": (0.0, 0.0, 100.0),
}
_CHANGEPOINT = {
    "Perfect detector": (100.0, 100.0, 100.0, 0, 0),
    "MSCRED": (32.42, 16.53, 40.28, 55, 342),
    "Isolation forest": (26.16, 19.5, 30.82, 76, 135),
    "T-squared+Q (PCA-based)": (25.35, 14.51, 31.33, 72, 232),
    "Conv-AE": (23.61, 21.54, 27.55, 82, 23),
    "LSTM-AE": (23.51, 20.11, 25.91, 88, 69),
    "T-squared": (19.54, 10.2, 24.31, 70, 106),
    "MSET": (13.84, 10.22, 17.37, 96, 66),
    "Vanilla AE": (11.41, 6.53, 13.91, 103, 106),
    "Vanilla LSTM": (11.31, -3.8, 17.25, 90, 342),
    "ArimaFD": (-0.09, -0.17, -0.06, 127, 2),
    "Null detector": (0.0, 0.0, 0.0, None, None),
}


def _rows() -> dict[str, dict[str, float | None]]:
    rows: dict[str, dict[str, float | None]] = {}
    for name in list(_OUTLIER) + [n for n in _CHANGEPOINT if n not in _OUTLIER]:
        point = _OUTLIER.get(name, (None, None, None))
        cp = _CHANGEPOINT.get(name, (None, None, None, None, None))
        rows[name] = dict(zip(COLUMNS, (*point, *cp), strict=True))
    return rows


PUBLISHED: dict[str, dict[str, float | None]] = _rows()
