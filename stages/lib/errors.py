"""One kind of error for bad input, and the one place that turns it into a clean exit."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input the user can fix: the message names the file and the cause, on one line."""


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a UserError becomes one line on stderr and exit status 2."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
