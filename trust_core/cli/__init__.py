"""The ``trust`` command line (``trust --help``; ``python -m trust_core.cli``)."""
from __future__ import annotations

import sys

from ..errors import TrustError
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a refused argument (already said)
        return int(exc.code or 0)
    try:
        return args.func(args)
    except TrustError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun to continue", file=sys.stderr)
        return 130
