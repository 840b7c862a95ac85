"""The ``mmlw`` command. Thin: every command calls the same functions as the API.

Errors end in a non-zero exit and one line on stderr; ``--verbose`` shows more. Each
module of this package adds its commands to the one :data:`main` group.
"""

import sys

from mmlw.cli import alerts as _alerts  # noqa: F401  (each import registers its commands)
from mmlw.cli import bench  # noqa: F401
from mmlw.cli import dashboard as _dashboard  # noqa: F401
from mmlw.cli import database as _database  # noqa: F401
from mmlw.cli import dead_letters as _dead_letters  # noqa: F401
from mmlw.cli import evaluate as _evaluate  # noqa: F401
from mmlw.cli import importing as _importing  # noqa: F401
from mmlw.cli import keys as _keys  # noqa: F401
from mmlw.cli import lifecycle as _lifecycle  # noqa: F401
from mmlw.cli import models as _models  # noqa: F401
from mmlw.cli import processes as _processes  # noqa: F401
from mmlw.cli import publishing as _publishing  # noqa: F401
from mmlw.cli import selection as _selection  # noqa: F401
from mmlw.cli import tuning as _tuning  # noqa: F401
from mmlw.cli.core import main

__all__ = ["main", "run"]


def run() -> None:
    """The console script: :data:`main`, except that a command needing a library only the
    ``server`` extra installs ends in one line and exit code 1, so a machine with just the
    light package (``pip install mmlw``: the pika publisher) is told the fix, not a
    traceback. Our own module missing is a bug and still raises."""
    try:
        main()
    except ModuleNotFoundError as exc:
        missing = exc.name or "mmlw"
        if missing.partition(".")[0] == "mmlw":
            raise
        words = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
        command = " ".join(["mmlw", *words[:1]])
        print(
            f"{command} needs the server parts: pip install 'mmlw[server]' ({missing} is missing)",
            file=sys.stderr,
        )
        sys.exit(1)
