"""What every stage's command line shares: its arguments, params loading, and a clean exit on bad input."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import params as params_lib
from .errors import UserError


def stage_args(description: str, model: bool = True, extra: Callable | None = None):
    """Parse `[NAME] [--params FILE]` (+ extra options) and load the params; NAME must be a model."""
    parser = argparse.ArgumentParser(description=description)
    if model:
        parser.add_argument("name", help="model name under 'models' in params.yaml")
    parser.add_argument("--params", default="params.yaml")
    if extra:
        extra(parser)
    args = parser.parse_args()
    loaded = params_lib.load(args.params)
    if model:
        loaded.model(args.name)
    return args, loaded


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a UserError becomes one line on stderr and exit status 2."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
