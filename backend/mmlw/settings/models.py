"""The models section, ``MMLW_MODELS__*``: how models are trained, served, promoted and
retrained when their machine drifts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from mmlw.detectors.default import DEFAULT_DETECTOR

__all__ = ["DriftSettings", "ModelSettings", "PromotionSettings"]


class PromotionSettings(BaseModel):
    """The gate a challenger passes to become champion.

    ``labelled``: on the machine's newest labelled readings outside the challenger's
    training window (too few left: refused) both versions are scored;
    the challenger needs F1 >= champion F1 - ``f1_tolerance`` and a false-alarm rate at
    most the champion's + ``far_tolerance``. ``shadow``: on the batches both scored
    live, the challenger may flag at most ``max_alert_ratio`` x the champion's rate (or
    ``min_flag_rate``, whichever is larger). ``auto``: labelled when there are at least
    ``min_readings`` labelled readings with both classes, else shadow.
    """

    gate: Literal["auto", "labelled", "shadow"] = "auto"
    min_readings: int = Field(default=200, ge=1)
    f1_tolerance: float = Field(default=0.02, ge=0)
    far_tolerance: float = Field(default=0.0, ge=0)
    max_alert_ratio: float = Field(default=1.5, gt=0)
    min_flag_rate: float = Field(default=0.01, ge=0, le=1)


class DriftSettings(BaseModel):
    """Page-Hinkley on log(score / threshold) per reading; see mmlw.detectors.drift."""

    enabled: bool = True
    delta: float = Field(default=0.5, ge=0)
    threshold: float = Field(default=800.0, gt=0)
    min_readings: int = Field(default=200, ge=1, description="readings before it may fire")
    train_readings: int = Field(
        default=300, ge=10, description="readings after the change to retrain on"
    )
    min_regime_s: float = Field(
        default=600.0,
        ge=0,
        description="a change is a new regime, retrained on, only once it has lasted this "
        "long (by the readings' clock); readings back under the threshold before then end "
        "it as an episode (a fault), with no retraining",
    )
    promote: bool = Field(
        default=True,
        description="the version a drift retrain makes is challenger; promote it to "
        "champion when it passes the promotion gate (on the beat's models-maintain run), "
        "even where MMLW_MODELS__AUTO_PROMOTE is off",
    )


class ModelSettings(BaseModel):
    default_detector: str = DEFAULT_DETECTOR
    threshold_quantile: float = Field(default=0.995, gt=0.5, lt=1.0)
    alias_cache_ttl_s: float = Field(default=5.0, ge=0.0)
    preload_machines: int = Field(
        default=64,
        ge=0,
        description="each worker process loads the champion and challenger of this many "
        "most recently seen machines as it starts, so no batch waits for a model load "
        "after a restart (0: load on a machine's first batch)",
    )
    cache_max_versions: int = Field(
        default=4096,
        ge=1,
        description="model versions a worker or scorer process holds in memory at most, "
        "the least recently used dropped first (a version no alias serves any more is "
        "dropped at once); keep it at least twice the machines a process scores (and "
        "preload_machines), or every batch reloads its model",
    )
    cache_max_mb: float = Field(
        default=256.0,
        gt=0,
        description="the most memory the models a process holds may take (their pickled "
        "size), the least recently used dropped first: a PCA model takes ~1 KB, adaptive ~5 KB, an "
        "Isolation Forest ~1.1 MB (and ~0.7 MB more in memory once it has scored: its trees as "
        "flat arrays)",
    )
    registered_model_prefix: str = "mmlw-"
    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key that vouches for model artifacts MMLW registered; workers load "
        "no version without its signature (required in production, at least 32 characters; "
        "elsewhere a random key is kept in data_dir/model-signing.key)",
    )
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    retrain_every_s: float | None = Field(
        default=None,
        gt=0,
        description="scheduled retraining per machine (beat); None = off",
    )
    retrain_last_n: int = Field(default=5000, ge=10, description="window of scheduled retrains")
    auto_promote: bool = Field(
        default=False,
        description="beat promotes a challenger as soon as it passes the gate",
    )
    extra_sensors: Literal["ignore", "reject"] = Field(
        default="ignore",
        description="a batch's sensors that the model's input schema lacks: dropped before "
        "scoring, or the batch is dead-lettered (missing sensors always dead-letter it)",
    )
