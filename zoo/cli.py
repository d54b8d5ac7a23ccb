"""What every zoo command line does with an error a user can cause: one line, exit status 2.

Each script keeps a ``main(argv) -> int`` that tests call in-process, and ends with::

    if __name__ == "__main__":
        run_cli(main)

A :class:`~zoo.errors.ZooError` that reaches :func:`run_cli` is printed as a
single ``error: ...`` line on stderr (no traceback) and the process exits with
status :data:`EXIT_ERROR`. A script that catches errors itself returns
:func:`report_error`'s status, so both paths look the same.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Sequence

from .errors import ZooError

# argparse exits with 2 for a bad command line; a bad file, tag or download is the user's to fix too.
EXIT_ERROR = 2


def one_line(error: BaseException | str) -> str:
    """``error``'s message on one line (its lines joined with "; ")."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


def report_error(error: BaseException | str) -> int:
    """Print ``error: <message>`` on stderr, on one line, and return :data:`EXIT_ERROR`."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return EXIT_ERROR


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``main(argv)`` and exit with its status; a :class:`ZooError` becomes one ``error:`` line and status 2."""
    try:
        status = main(argv)
    except ZooError as error:
        status = report_error(error)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
