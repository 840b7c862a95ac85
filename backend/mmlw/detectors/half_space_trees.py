"""Half-Space Trees (Tan, Ting & Liu, 2011): a streaming detector that keeps learning."""

from __future__ import annotations

import numpy as np

from mmlw.detectors._shares import squared_z_share
from mmlw.detectors.base import BaseDetector, Carry, as_matrix

__all__ = ["HalfSpaceTreesDetector"]


class HalfSpaceTreesDetector(BaseDetector):
    """Ensemble of random half-space trees scored by the mass of the leaf a row falls in.

    ``fit(X)`` draws the trees over a randomly perturbed work range around the training
    feature ranges and sets each node's *reference mass* from ``X`` (rescaled to
    ``window_size`` rows). ``partial_fit(X)`` streams rows (in order) into the *latest*
    mass profile; every ``window_size`` rows the latest profile becomes the reference,
    as in the paper. Scoring uses the reference profile only, so it is a pure function
    between updates. :meth:`stream` does both as rows arrive, the way the paper runs it:
    each row is scored with the reference of its window, then learned, with the mass
    profiles carried from one part of a series to the next (the fitted detector itself
    never changes). Score = ``1 - Σ_trees r·2^depth / (n_trees · window_size · 2^max_depth)``
    over each row's terminal node (depth ``max_depth`` or mass below ``size_limit ·
    window_size``): higher = lower mass = more anomalous. Deterministic given
    ``random_state``. :meth:`explain` splits the score in proportion to squared
    standardized deviations from the training mean (rows sum exactly to the score).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 3))
    >>> det = HalfSpaceTreesDetector(random_state=0).fit(X)
    >>> normal, outlier = det.anomaly_score(np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0]]))
    >>> bool(outlier > normal)
    True
    >>> det = det.partial_fit(rng.normal(loc=4.0, size=(250, 3)))  # a window: new normal
    >>> bool(det.anomaly_score(np.array([[4.0, 4.0, 4.0]]))[0] < 0.999)
    True
    """

    def __init__(
        self,
        n_trees: int = 25,
        max_depth: int = 10,
        window_size: int = 250,
        size_limit: float = 0.1,
        random_state: int | None = 0,
        eps: float = 1e-9,
    ) -> None:
        self.n_trees = n_trees
        self.max_depth = max_depth
        self.window_size = window_size
        self.size_limit = size_limit
        self.random_state = random_state
        self.eps = eps

    # building ------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> HalfSpaceTreesDetector:
        X = as_matrix(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError("X: need at least 2 rows to fit")
        if int(self.max_depth) < 1 or int(self.n_trees) < 1 or int(self.window_size) < 1:
            raise ValueError("n_trees, max_depth and window_size must be >= 1")
        self._fit_standardizer(X)
        rng = np.random.default_rng(self.random_state)
        depth = int(self.max_depth)
        n_nodes = 2 ** (depth + 1) - 1
        self.split_feature_ = np.zeros((int(self.n_trees), n_nodes), dtype=np.intp)
        self.split_value_ = np.zeros((int(self.n_trees), n_nodes))
        low, high = X.min(axis=0), X.max(axis=0)
        # A sensor constant in training spans its scale floor around its value, so pivots
        # do not sit on the value itself and the first split on it can separate a move.
        low = np.where(self.constant_, self.mean_ - self.scale_, low)
        high = np.where(self.constant_, self.mean_ + self.scale_, high)
        for tree in range(int(self.n_trees)):
            self._build_tree(tree, rng, low, high, depth)
        self.reference_mass_ = self._counts(X) * (int(self.window_size) / n)
        self.latest_mass_ = np.zeros_like(self.reference_mass_)
        self.latest_rows_ = 0
        return self

    def _build_tree(
        self, tree: int, rng: np.random.Generator, low: np.ndarray, high: np.ndarray, depth: int
    ) -> None:
        """Fill one tree's split arrays (heap order) level by level over its work range.

        The work range is ``pivot ± half`` with ``half >= 2 · scale_``: never empty, and for
        a sensor constant in training as narrow as its scale floor (a millionth of its
        magnitude), so a later move of that sensor leaves the training rows' nodes. For a
        sensor that moves, ``half`` already covers its range (>= 2 · std), so it is unchanged.
        """
        pivot = rng.uniform(low, high)
        half = np.maximum(2 * np.maximum(pivot - low, high - pivot), 2 * self.scale_)
        lows, highs = (pivot - half)[None, :], (pivot + half)[None, :]
        for level in range(depth):
            first = 2**level - 1
            count = 2**level
            features = rng.integers(0, len(low), size=count)
            rows = np.arange(count)
            values = (lows[rows, features] + highs[rows, features]) / 2
            self.split_feature_[tree, first : first + count] = features
            self.split_value_[tree, first : first + count] = values
            left_high, right_low = highs.copy(), lows.copy()
            left_high[rows, features] = values
            right_low[rows, features] = values
            lows = np.stack([lows, right_low], axis=1).reshape(-1, len(low))
            highs = np.stack([left_high, highs], axis=1).reshape(-1, len(low))

    def _paths(self, X: np.ndarray, tree: int) -> np.ndarray:
        """Node index per row and level along its full path, shape (max_depth + 1, n)."""
        rows = np.arange(len(X))
        node = np.zeros(len(X), dtype=np.intp)
        path = [node]
        for _ in range(int(self.max_depth)):
            feature = self.split_feature_[tree, node]
            right = X[rows, feature] >= self.split_value_[tree, node]
            node = 2 * node + 1 + right
            path.append(node)
        return np.stack(path)

    def _counts(self, X: np.ndarray) -> np.ndarray:
        counts = np.zeros(self.split_value_.shape)
        for tree in range(int(self.n_trees)):
            np.add.at(counts[tree], self._paths(X, tree).ravel(), 1.0)
        return counts

    # learning online -----------------------------------------------------------------
    def partial_fit(self, X: np.ndarray, y: np.ndarray | None = None) -> HalfSpaceTreesDetector:
        """Stream rows (time order) into the latest window; fits first if unfitted."""
        if not hasattr(self, "n_features_in_"):
            return self.fit(X)
        X = self._check_input(X)
        window = int(self.window_size)
        start = 0
        while start < len(X):
            take = min(window - self.latest_rows_, len(X) - start)
            self.latest_mass_ += self._counts(X[start : start + take])
            self.latest_rows_ += take
            start += take
            if self.latest_rows_ >= window:
                self.reference_mass_ = self.latest_mass_
                self.latest_mass_ = np.zeros_like(self.reference_mass_)
                self.latest_rows_ = 0
        return self

    # streaming -----------------------------------------------------------------------
    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]:
        """Score each row with its window's reference mass, then learn it (see class)."""
        X = self._check_input(X)
        if carry:
            reference, latest = carry["reference"], carry["latest"].copy()
            rows = int(carry["latest_rows"][0])
        else:
            reference, latest, rows = self.reference_mass_, np.zeros_like(self.reference_mass_), 0
        window = int(self.window_size)
        scores = np.empty(len(X))
        start = 0
        while start < len(X):
            stop = start + min(window - rows, len(X) - start)
            part = X[start:stop]
            scores[start:stop] = self._score(part, reference)
            latest += self._counts(part)
            rows += stop - start
            if rows >= window:
                reference, latest, rows = latest, np.zeros_like(latest), 0
            start = stop
        after = {"reference": reference, "latest": latest, "latest_rows": np.array([rows])}
        return squared_z_share((X - self.mean_) / self.scale_, scores), after

    # scoring -------------------------------------------------------------------------
    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._score(self._check_input(X), self.reference_mass_)

    def _score(self, X: np.ndarray, reference_mass: np.ndarray) -> np.ndarray:
        depth = int(self.max_depth)
        limit = float(self.size_limit) * int(self.window_size)
        mass = np.zeros(len(X))
        for tree in range(int(self.n_trees)):
            path = self._paths(X, tree)
            reference = reference_mass[tree, path]  # (depth + 1, n)
            below = reference < limit
            below[depth] = True
            stop = below.argmax(axis=0)  # first level whose mass is under the limit
            mass += reference[stop, np.arange(len(X))] * 2.0**stop
        top = int(self.n_trees) * int(self.window_size) * 2.0**depth
        return 1.0 - mass / top

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return squared_z_share(Z, self.anomaly_score(X))
