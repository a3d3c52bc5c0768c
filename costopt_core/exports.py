"""What a package of this distribution exports, and what it needs installed.

One definition for the ``__init__`` of every package here (the engine, its stores,
both faces): :func:`lazy_exports` builds the module ``__getattr__`` / ``__dir__`` that
load a re-exported name's module on first use, so ``import costopt_core`` stays cheap
and never needs an optional extra; :func:`require_extra` fails early with the
``pip install`` line of a missing extra.

Example:
    >>> from costopt_core.exports import install_hint, lazy_exports
    >>> getattr_, dir_, names = lazy_exports("costopt_core", {"json": ("dumps", "loads")})
    >>> names
    ['dumps', 'loads']
    >>> getattr_("dumps")({"a": 1})
    '{"a": 1}'
    >>> install_hint("llamaindex")
    'pip install "costopt-llm[llamaindex]"'
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: The name on PyPI ("costopt" is an unrelated project).
DISTRIBUTION = "costopt-llm"

#: ``__version__`` when the packages run from a source tree that was never installed.
UNKNOWN_VERSION = "0+unknown"


@functools.cache
def distribution_version() -> str:
    """The installed distribution's version (``UNKNOWN_VERSION`` if not installed).

    Example:
        >>> distribution_version() != ""
        True
    """
    # importlib.metadata costs tens of milliseconds to import: only on first use.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN_VERSION


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def module_available(module: str) -> bool:
    """True when ``module`` can be imported (found on the path; not imported here,
    though a dotted name's parent package is)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise ``ImportError`` naming the ``pip install`` line of ``extra`` unless
    ``module`` can be imported; ``what`` says what needs it.

    Example:
        >>> require_extra("json", "none", "the standard library")
        >>> require_extra("no_such_module_xyz", "demo", "the demo")
        Traceback (most recent call last):
        ...
        ImportError: the demo needs no_such_module_xyz: pip install "costopt-llm[demo]"
    """
    if not module_available(module):
        raise ImportError(f"{what} needs {module}: {install_hint(extra)}", name=module)


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``, and the lazy names.

    ``exports`` maps a module name to the names it provides; each module is imported
    when one of its names is first read from ``package``. ``__version__`` is answered
    too: the distribution's version, read from its metadata on first use. In a package's
    ``__init__``::

        __getattr__, __dir__, _LAZY = lazy_exports(__name__, {"pkg.mod": ("Name",)})
        __all__ = ["EagerName", *_LAZY]
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is not None:
            return getattr(importlib.import_module(module), name)
        if name == "__version__":
            return distribution_version()
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where, "__version__"})

    return __getattr__, __dir__, list(where)


__all__ = [
    "DISTRIBUTION",
    "UNKNOWN_VERSION",
    "distribution_version",
    "install_hint",
    "lazy_exports",
    "module_available",
    "require_extra",
]
