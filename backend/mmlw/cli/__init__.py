"""The ``mmlw`` command. Thin: every command calls the same functions as the API.

Errors end in a non-zero exit and one line on stderr; ``--verbose`` shows more. Each
module of this package adds its commands to the one :data:`main` group.
"""

from mmlw.cli import alerts as _alerts  # noqa: F401
from mmlw.cli import bench, commands  # noqa: F401  (registers the commands)
from mmlw.cli import dashboard as _dashboard  # noqa: F401
from mmlw.cli import importing as _importing  # noqa: F401
from mmlw.cli import keys as _keys  # noqa: F401
from mmlw.cli import lifecycle as _lifecycle  # noqa: F401
from mmlw.cli import tuning as _tuning  # noqa: F401
from mmlw.cli.core import main

__all__ = ["main"]
