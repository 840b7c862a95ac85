"""One settings object for every process, read from ``MMLW_*`` environment variables.

Nested sections use a double underscore: ``MMLW_BROKER__URL``, ``MMLW_API__KEYS``.
Entry points build a :class:`Settings` once and pass it down; nothing below them reads
the environment.
"""

from mmlw.settings.broker import (
    BROKER_SCHEMES,
    INGEST_MAX_LENGTH,
    SCORE_PARTITIONS,
    BrokerSettings,
)
from mmlw.settings.models import DriftSettings, ModelSettings, PromotionSettings
from mmlw.settings.root import Settings
from mmlw.settings.sections import (
    AlertSettings,
    ApiSettings,
    DashboardSettings,
    SmtpSettings,
    TaskSettings,
)

__all__ = [
    "BROKER_SCHEMES",
    "INGEST_MAX_LENGTH",
    "SCORE_PARTITIONS",
    "AlertSettings",
    "ApiSettings",
    "BrokerSettings",
    "DashboardSettings",
    "DriftSettings",
    "ModelSettings",
    "PromotionSettings",
    "Settings",
    "SmtpSettings",
    "TaskSettings",
]
