"""Asking a cache verifier, sync or async, without ever failing the user's call.

Example:
    >>> import asyncio
    >>> from costopt_core.cache_verify import ask, aask
    >>> def same_topic(question, cached_question, cached_answer):
    ...     return question.split()[0] == cached_question.split()[0]
    >>> ask(same_topic, "Paris weather?", "Paris weather today?", "Sunny.", timeout=1.0)
    True
    >>> def broken(question, cached_question, cached_answer):
    ...     raise RuntimeError("judge is down")
    >>> ask(broken, "a", "b", "c", timeout=1.0)  # a failure counts as "no"
    False
    >>> async def judge(question, cached_question, cached_answer):
    ...     return True
    >>> asyncio.run(aask(judge, "a", "b", "c", timeout=1.0))
    True

A verifier is ``verifier(question, cached_question, cached_answer) -> bool`` (True: the
cached answer answers the new question). It may be a plain function, an ``async``
function, or an object with ``verify`` / ``averify`` methods (the ready verifiers:
``langchain_costopt.verifiers.ChatModelVerifier``,
``llamaindex_costopt.verifiers.LLMVerifier`` and, on a local cross-encoder,
:class:`costopt_core.cross_encoder.CrossEncoderVerifier`).

Rules: anything but a ``True`` verdict within ``timeout`` seconds is "no": an exception,
a timeout, a non-bool answer. The fault is logged (once per kind, then at DEBUG) and
the lookup is a miss, so the model answers: a verifier can cost a cache hit, never the
call. A sync verifier runs in a worker thread so that a timeout can be enforced; the
thread cannot be killed, so a verifier that hangs keeps its thread until it returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from costopt_core.cache_gate import number_in

logger = logging.getLogger(__name__)

Verifier = Callable[[str, str, str], Any]

# Few threads: verifier calls are rare (uncertain candidates only) and mostly I/O bound.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="costopt-verifier")
_logged: set[str] = set()


def check_verifier(verifier: Any) -> None:
    """TypeError unless ``verifier`` is None, callable, or has ``verify``/``averify``."""
    if verifier is None or callable(verifier):
        return
    if callable(getattr(verifier, "verify", None)) or callable(getattr(verifier, "averify", None)):
        return
    raise TypeError(
        "verifier must be a callable (question, cached_question, cached_answer) -> bool "
        f"or an object with verify/averify, got {type(verifier).__name__}"
    )


def check_timeout(timeout: float) -> float:
    """``timeout`` validated: seconds, a finite number > 0."""
    if not number_in(timeout, 0, 1e6):
        raise ValueError(f"verifier_timeout must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _sync_callable(verifier: Any) -> Callable[[str, str, str], Any]:
    method = getattr(verifier, "verify", None)
    return method if callable(method) else verifier


def _fault(kind: str, exc: BaseException | None = None) -> bool:
    first = kind not in _logged
    if first and len(_logged) < 64:
        _logged.add(kind)
    log = logger.warning if first else logger.debug
    log("cache verifier %s; counted as 'no' (the model answers)", kind, exc_info=exc)
    return False


def _verdict(value: Any) -> bool:
    if isinstance(value, bool | int) and value in (0, 1):
        return bool(value)
    return _fault(f"returned {type(value).__name__}, not bool")


def ask(verifier: Any, question: str, cached_question: str, answer: str, *, timeout: float) -> bool:
    """The verifier's verdict, ``False`` on any failure or after ``timeout`` seconds."""
    call = _sync_callable(verifier)
    if inspect.iscoroutinefunction(call):
        return _fault("is async-only; give the async API (alookup) or a sync verifier")
    context = contextvars.copy_context()  # tenant scope and tracing reach the thread
    try:
        future = _POOL.submit(context.run, call, question, cached_question, answer)
        return _verdict(future.result(timeout=timeout))
    except FutureTimeout:
        return _fault(f"timed out after {timeout:g}s")
    except Exception as exc:
        return _fault(f"raised {type(exc).__name__}", exc)


async def aask(
    verifier: Any, question: str, cached_question: str, answer: str, *, timeout: float
) -> bool:
    """Async :func:`ask`: ``averify`` or an async callable is awaited, a sync one runs in
    a worker thread; ``False`` on any failure or after ``timeout`` seconds."""
    method = getattr(verifier, "averify", None)
    call = method if callable(method) else _sync_callable(verifier)
    try:
        if inspect.iscoroutinefunction(call):
            result = await asyncio.wait_for(call(question, cached_question, answer), timeout)
        else:
            result = await asyncio.wait_for(
                asyncio.to_thread(call, question, cached_question, answer), timeout
            )
        return _verdict(result)
    except TimeoutError:
        return _fault(f"timed out after {timeout:g}s")
    except Exception as exc:
        return _fault(f"raised {type(exc).__name__}", exc)


__all__ = ["Verifier", "aask", "ask", "check_timeout", "check_verifier"]
