"""Stores and ledgers that keep working in the children of ``os.fork()``.

A store or ledger made before a fork (``gunicorn --preload``, Celery's prefork pool,
``multiprocessing`` with the ``fork`` start method) is copied into every child with its
open connections: the children would then talk over the parent's sockets at once (and
read each other's answers), and a pool's worker threads do not exist in a child. Right
after a fork each child asks every live store to forget what it inherited and to open
its own connections. How each kind lets go of the inherited ones is its own affair: a
PostgreSQL pool is handed to :func:`keep_inherited` (closing it would end the parent's
sessions: the Terminate message goes out on the shared socket), a SQLite connection is
closed (see :func:`costopt_core.stores.sqlite_file.close_inherited`).

Example:
    >>> import os
    >>> from costopt_core.stores.fork_safety import watch_forks
    >>> class Conn:
    ...     def __init__(self):
    ...         self.pid = os.getpid()
    ...     def forget_inherited(self):
    ...         self.pid = os.getpid()
    >>> conn = Conn()
    >>> watch_forks(conn)
    >>> pid = os.fork()
    >>> if pid == 0:  # the child: its own pid, set by the hook
    ...     os._exit(0 if conn.pid == os.getpid() else 1)
    >>> os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    0
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ForkAware(Protocol):
    """Holds connections a forked child must not use."""

    def forget_inherited(self) -> None:
        """In a child right after ``os.fork()`` (one thread, nothing else running):
        drop the parent's connections without closing them (hand them to
        :func:`keep_inherited`) and reset any lock, so the next use opens new ones."""


_watched: weakref.WeakSet[Any] = weakref.WeakSet()
_inherited: list[Any] = []
_hook_lock = threading.Lock()
_hooked = False


def watch_forks(owner: ForkAware) -> None:
    """Call ``owner.forget_inherited()`` in each child process forked from now on
    (for as long as ``owner`` lives)."""
    global _hooked
    with _hook_lock:
        if not _hooked:
            os.register_at_fork(after_in_child=_in_child)
            _hooked = True
        _watched.add(owner)


def keep_inherited(*handles: Any) -> None:
    """Keep the parent's ``handles`` alive in this child: never closed, never collected
    (a finalizer could close the parent's session or checkpoint its file)."""
    _inherited.extend(handle for handle in handles if handle is not None)


def _in_child() -> None:
    global _hook_lock
    _hook_lock = threading.Lock()  # a parent thread may have held it at the fork
    for owner in list(_watched):
        try:
            owner.forget_inherited()
        except Exception:  # one store must not keep the others on the parent's sockets
            logger.exception("%r: could not drop the connections inherited through fork", owner)


__all__ = ["ForkAware", "keep_inherited", "watch_forks"]
