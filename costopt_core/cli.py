"""The ``costopt`` command line: ``costopt estimate``, ``eval-router``, ``train-router``,
``report``, ``techniques``.

Each sub-command lives in ``costopt_core.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

_COMMANDS = ("estimate", "eval_router", "train_router", "report", "techniques")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costopt", description="Project and measure LLM costs, evaluate routers."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        module_name = f"costopt_core.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A sub-command still being written must not take the others down with it;
            # any other missing module is a real error.
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``costopt`` with ``argv`` (default: the process's arguments); the exit status.

    Example:
        >>> main(["estimate", "--model", "deepseek-v3", "--requests-per-day", "1000",
        ...       "--input-tokens", "500", "--output-tokens", "200"])
        deepseek-v3: $0.000126/request, $0.13/day, $3.78 per 30-day month (price: ...)
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        _quiet_stdout()  # the reader left (``costopt ... | head``): stop quietly
        return 1
    except (ValueError, OSError, ImportError) as exc:
        # Bad input, a path that is a directory or unwritable, a missing extra: the
        # command's error line (an ImportError names the extra to install), no traceback.
        print(f"costopt {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit and would fail once more: point it at devnull.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is no file (captured): nothing left to flush at exit
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
