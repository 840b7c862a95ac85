"""The detector users get without naming one (``mmlw train``, the API, the demo, stream
evaluation): held, cross-sensor anomaly likelihood (:mod:`mmlw.detectors.adaptive`).
Kept apart from the catalog so naming it imports no detector code; the name itself is
part of the wire contract (:mod:`mmlw.schemas.jobs`)."""

from mmlw.schemas.jobs import DEFAULT_DETECTOR

__all__ = ["DEFAULT_DETECTOR"]
