"""Faults that must never fail the user's call, logged so a persistent one does not flood
the log: each distinct fault in full (with its traceback) once, its repeats at DEBUG.

Example:
    >>> import logging
    >>> faults = FaultLog(logging.getLogger("demo"), "the cost ledger")
    >>> faults.report("budget check", ConnectionError("server down"))  # logged in full
    True
    >>> faults.report("budget check", ConnectionError("server down"))  # at DEBUG
    False
    >>> faults.count
    2

Why: a ledger or store that is down fails every call the same way; a traceback per call
(396 of them in one audit run) hides everything else in the log.
"""

from __future__ import annotations

import logging
import threading

#: Distinct faults remembered; beyond this many, new ones are logged at DEBUG too.
MAX_DISTINCT = 256


class FaultLog:
    """Logs ``what``'s faults: ``report(action, exc)`` at ERROR the first time a fault
    (action, exception type, message) is seen, at DEBUG after; ``count`` counts them all."""

    def __init__(self, logger: logging.Logger, what: str, consequence: str = "") -> None:
        self._logger = logger
        self._what = what
        self._consequence = consequence
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self.count = 0

    def report(self, action: str, exc: BaseException) -> bool:
        """Log the fault of ``action``; True when it was logged in full (its first time)."""
        key = (action, type(exc).__name__, str(exc)[:200])
        with self._lock:
            self.count += 1
            first = key not in self._seen and len(self._seen) < MAX_DISTINCT
            if first:
                self._seen.add(key)
        if first:
            self._logger.error(
                "%s: %s failed%s: %s (repeats are logged at DEBUG level)",
                self._what,
                action,
                self._consequence,
                exc,
                exc_info=exc,
            )
        else:
            self._logger.debug("%s: %s failed again: %s", self._what, action, exc)
        return first


__all__ = ["MAX_DISTINCT", "FaultLog"]
