"""The ``costopt`` sub-commands, one module each (see :mod:`costopt_core.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_command(
    subparsers: Any, name: str, summary: str, description: str, run: Callable[..., Any]
) -> argparse.ArgumentParser:
    """Add the sub-command ``name``: its one-line ``summary`` (``costopt --help``), its
    ``description`` (``costopt NAME --help``) and the function that runs it.

    Example:
        >>> parser = argparse.ArgumentParser(prog="costopt")
        >>> sub = parser.add_subparsers(dest="command")
        >>> _ = add_command(sub, "hello", "say hello", "Say hello.", lambda args: 0)
        >>> parser.parse_args(["hello"]).func(None)
        0
    """
    parser = subparsers.add_parser(name, help=summary, description=description)
    parser.set_defaults(func=run)
    return parser


__all__ = ["add_command"]
