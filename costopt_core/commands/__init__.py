"""The ``costopt`` sub-commands, one module each (see :mod:`costopt_core.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from costopt_core.exports import require_extra


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


def require_plot(flag: str) -> None:
    """Refuse ``flag`` (a chart output) before any work when matplotlib (extra ``[plot]``)
    is missing: a ``ValueError`` naming the ``pip install`` line, which the ``costopt``
    command prints as its error (exit 2), nothing computed and nothing written.

    Example:
        >>> require_plot("--plot")  # matplotlib is installed here: nothing to say
    """
    try:
        require_extra("matplotlib", "plot", flag)
    except ImportError as exc:
        raise ValueError(f"{exc} (nothing was written; drop {flag} to run without it)") from None


__all__ = ["add_command", "require_plot"]
