"""Run a batch through a provider's batch API: submit, poll until it ends, fetch results.

Example:
    >>> from costopt_core.batch import OpenAIBatchAPI, batch_requests, run_batch
    >>> from costopt_core.batch.imitation import ImitationBatchServer
    >>> with ImitationBatchServer(processing_s=0.01) as server:
    ...     api = OpenAIBatchAPI(api_key=server.api_key, base_url=server.openai_base_url)
    ...     requests = batch_requests("gpt-4o-mini", [[{"role": "user", "content": "hi"}]])
    ...     [result] = run_batch(api, requests, poll_interval_s=0.01)
    >>> result.ok, result.usage.input_tokens > 0, result.model
    (True, True, 'gpt-4o-mini')

The loop is written once, as a generator of HTTP call descriptions (:class:`BatchJob`);
:func:`run_batch` runs it with ``httpx.Client`` and ``time.sleep``, :func:`arun_batch`
with ``httpx.AsyncClient`` and ``asyncio.sleep``. Polling starts at ``poll_interval_s``
and backs off by half each time up to ``max_poll_interval_s``. A batch not ended by
``timeout_s`` is cancelled (best effort) and :class:`BatchTimeoutError` raised; so is a
batch whose caller is interrupted (``KeyboardInterrupt``, task cancellation) after it
was submitted. Results come back in the order of the requests, matched by ``custom_id``.

Proxies from the environment are used, except for a loopback base URL (a local server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import logging
import math
import ssl
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from costopt_core.batch.requests import (
    BatchAPIError,
    BatchRequest,
    BatchResult,
    BatchTimeoutError,
)
from costopt_core.batch.wire import BatchProvider, HttpCall, HttpReply, Steps, Wait
from costopt_core.keyword_options import KeywordOptions

logger = logging.getLogger(__name__)

_INSTALL = 'the batch API client needs httpx: pip install "costopt-llm[batch]"'


@dataclass(frozen=True)
class PollSettings:
    """How a batch is waited for.

    Example:
        >>> PollSettings(poll_interval_s=0)
        Traceback (most recent call last):
        ...
        ValueError: poll_interval_s must be a number > 0, got 0
    """

    poll_interval_s: float = 10.0
    max_poll_interval_s: float = 300.0
    #: The providers finish within 24 hours (their completion window).
    timeout_s: float = 24 * 3600.0
    #: Tries of a call that got no answer, a 429 or a 5xx (submit and result fetches).
    retries: int = 3
    #: One HTTP call's own timeout.
    http_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("poll_interval_s", "max_poll_interval_s", "timeout_s", "http_timeout_s"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 1:
            raise ValueError(f"retries must be an int >= 1, got {self.retries!r}")


class BatchJob:
    """One batch's whole conversation with its provider, as a generator (no I/O).

    ``steps()`` yields :class:`HttpCall` (to be answered with an :class:`HttpReply`) and
    :class:`Wait`, and returns the results in request order. ``batch_id`` is set once the
    batch is created.
    """

    def __init__(
        self,
        provider: BatchProvider,
        requests: Sequence[BatchRequest],
        settings: PollSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_submit: Callable[[str], Any] | None = None,
    ) -> None:
        if not requests:
            raise ValueError("requests must hold at least one BatchRequest")
        if len(requests) > provider.max_requests:
            raise ValueError(
                f"requests must number at most {provider.max_requests:,} for one "
                f"{provider.name} batch, got {len(requests):,}: split them"
            )
        ids = [r.custom_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("requests must have distinct custom_id values")
        self.provider = provider
        self.requests = list(requests)
        self.settings = settings or PollSettings()
        self.batch_id: str | None = None
        self._clock = clock
        self._on_submit = on_submit

    def steps(self) -> Steps:
        provider, settings = self.provider, self.settings
        deadline = self._clock() + settings.timeout_s
        self.batch_id = batch_id = yield from self._retrying(provider.submit(self.requests))
        logger.info("submitted %s batch %s (%d requests)", provider.name, batch_id, len(self))
        if self._on_submit is not None:
            self._on_submit(batch_id)
        delay = settings.poll_interval_s
        while True:
            reply = yield provider.status_call(batch_id)
            if reply is not None and not reply.transient:
                status = provider.read_status(batch_id, reply)  # raises if the batch failed
                if status.ended:
                    break
            left = deadline - self._clock()
            if left <= 0:
                yield from self._cancel()
                raise BatchTimeoutError(
                    f"{provider.name} batch {batch_id} had not ended after "
                    f"{settings.timeout_s:g} s; it was cancelled",
                    batch_id=batch_id,
                )
            yield Wait(min(delay, left))
            delay = min(delay * 1.5, settings.max_poll_interval_s)
        results = yield from self._retrying(provider.results(status))
        return self._in_order(results)

    def __len__(self) -> int:
        return len(self.requests)

    def _retrying(self, flow: Generator[HttpCall, HttpReply, Any]) -> Steps:
        """Run a provider flow, trying a call again when it got no answer, a 429 or a 5xx."""
        try:
            call = next(flow)
        except StopIteration as done:  # a flow with no call (e.g. a batch with no files)
            return done.value
        while True:
            for attempt in range(self.settings.retries):
                reply = yield call
                assert reply is not None
                if not reply.transient:
                    break
                if attempt + 1 < self.settings.retries:
                    yield Wait(self.settings.poll_interval_s * 2**attempt)
            try:
                call = flow.send(reply)
            except StopIteration as done:
                return done.value

    def _cancel(self) -> Steps:
        if self.batch_id is None:
            return
        reply = yield self.provider.cancel_call(self.batch_id)
        if reply is None or not 200 <= reply.status < 300:
            logger.warning("cancelling batch %s failed: %r", self.batch_id, reply)

    def _in_order(self, results: list[BatchResult]) -> list[BatchResult]:
        by_id = {r.custom_id: r for r in results}
        return [
            by_id.get(r.custom_id)
            or BatchResult(r.custom_id, error="the batch returned no result", error_type="missing")
            for r in self.requests
        ]

    def cancel_steps(self) -> Steps:
        """The cancel call of a submitted batch (nothing before it is submitted)."""
        return self._cancel()


# -- transports ----------------------------------------------------------------------------


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - httpx comes with langchain-core
        raise ImportError(_INSTALL) from exc
    return httpx


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _request(provider: BatchProvider, call: HttpCall) -> dict[str, Any]:
    url = (
        call.path
        if call.path.startswith(("http://", "https://"))
        else provider.base_url + call.path
    )
    kwargs: dict[str, Any] = {"method": call.method, "url": url, "headers": provider.headers()}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.files is not None:
        kwargs["files"] = dict(call.files)
        kwargs["data"] = dict(call.data or {})
    return kwargs


@functools.cache
def _plain_http_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _client_options(job: BatchJob) -> dict[str, Any]:
    provider = job.provider
    options: dict[str, Any] = {
        "timeout": job.settings.http_timeout_s,
        "trust_env": not _is_loopback(provider.base_url),
    }
    if provider.base_url.startswith("http://"):
        # No TLS on this URL: one shared context spares httpx loading the CA bundle
        # (a tenth of a second) for every client it opens.
        options["verify"] = _plain_http_context()
    return options


@dataclass(frozen=True)
class BatchRunOptions(KeywordOptions):
    """How a batch is waited for and over which HTTP client: the keyword arguments of
    :func:`run_batch` and :func:`arun_batch` (and of the faces' ``deferred_batch``).

    ``poll_interval_s``, ``max_poll_interval_s`` and ``timeout_s`` override those of
    ``settings`` (default :class:`PollSettings`); ``http_client``: an ``httpx.Client``
    (``httpx.AsyncClient`` for the async calls) to use, default one opened per batch.

    Example:
        >>> BatchRunOptions(poll_interval_s=60).poll_settings().max_poll_interval_s
        300.0
        >>> BatchRunOptions(poll_interval_s=600).poll_settings().max_poll_interval_s
        600
    """

    poll_interval_s: float | None = None
    max_poll_interval_s: float | None = None
    timeout_s: float | None = None
    settings: PollSettings | None = None
    http_client: Any = None

    def poll_settings(self) -> PollSettings:
        """``settings`` with the intervals and timeout given here (checked)."""
        base = self.settings or PollSettings()
        given = {
            "poll_interval_s": self.poll_interval_s,
            "max_poll_interval_s": self.max_poll_interval_s,
            "timeout_s": self.timeout_s,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        if not changes:
            return base
        if self.poll_interval_s is not None and self.max_poll_interval_s is None:
            changes["max_poll_interval_s"] = max(base.max_poll_interval_s, self.poll_interval_s)
        return dataclasses.replace(base, **changes)


class BatchRun:
    """One batch run over HTTP: its :class:`BatchJob` driven by ``httpx``, sync
    (:meth:`run`) or async (:meth:`arun`)."""

    def __init__(
        self,
        provider: BatchProvider,
        requests: Sequence[BatchRequest],
        options: BatchRunOptions | None = None,
        on_submit: Callable[[str], Any] | None = None,
    ) -> None:
        options = options or BatchRunOptions()
        self.job = BatchJob(provider, requests, options.poll_settings(), on_submit=on_submit)
        self.http_client = options.http_client

    def run(self) -> list[BatchResult]:
        """Submit, poll with ``time.sleep``, fetch (see :func:`run_batch`)."""
        httpx, job = _httpx(), self.job
        own = self.http_client is None
        client = httpx.Client(**_client_options(job)) if own else self.http_client

        def perform(call: HttpCall) -> HttpReply:
            try:
                return _reply(client.request(**_request(job.provider, call)))
            except httpx.TransportError as exc:
                return _no_reply(call, exc)

        try:
            return _drive(job.steps(), perform, time.sleep)
        except BaseException as exc:
            if _interrupted(job, exc):
                _drive(job.cancel_steps(), perform, time.sleep)  # stop paying
            raise
        finally:
            if own:
                client.close()

    async def arun(self) -> list[BatchResult]:
        """Async :meth:`run`, polling with ``asyncio.sleep``."""
        httpx, job = _httpx(), self.job
        own = self.http_client is None
        client = httpx.AsyncClient(**_client_options(job)) if own else self.http_client

        async def perform(call: HttpCall) -> HttpReply:
            try:
                return _reply(await client.request(**_request(job.provider, call)))
            except httpx.TransportError as exc:
                return _no_reply(call, exc)

        try:
            return await _adrive(job.steps(), perform)
        except BaseException as exc:
            if _interrupted(job, exc):
                # Cancelled or interrupted: stop the batch, shielded from a second cancel.
                await asyncio.shield(_adrive(job.cancel_steps(), perform))
            raise
        finally:
            if own:
                await client.aclose()


@BatchRunOptions.keywords()
def run_batch(
    provider: BatchProvider,
    requests: Sequence[BatchRequest],
    *,
    on_submit: Callable[[str], Any] | None = None,
    **options: Any,
) -> list[BatchResult]:
    """Submit ``requests`` as one batch, wait for it, return the results in order.

    ``options``: :class:`BatchRunOptions` (``poll_interval_s``, ``max_poll_interval_s``,
    ``timeout_s``, ``settings``, ``http_client``); ``on_submit(batch_id)`` is called once
    the provider has created the batch. Raises :class:`BatchAPIError` (refused, or the
    batch failed) or :class:`BatchTimeoutError`; a request answered with an error is a
    result with ``ok == False``.
    """
    run = BatchRun(provider, requests, BatchRunOptions.of(options, "run_batch"), on_submit)
    return run.run()


@BatchRunOptions.keywords()
async def arun_batch(
    provider: BatchProvider,
    requests: Sequence[BatchRequest],
    *,
    on_submit: Callable[[str], Any] | None = None,
    **options: Any,
) -> list[BatchResult]:
    """Async :func:`run_batch` (``http_client``: an ``httpx.AsyncClient``)."""
    run = BatchRun(provider, requests, BatchRunOptions.of(options, "arun_batch"), on_submit)
    return await run.arun()


def _reply(response: Any) -> HttpReply:
    return HttpReply(response.status_code, response.content)


def _no_reply(call: HttpCall, error: Exception) -> HttpReply:
    logger.warning("%s %s: %s", call.method, call.path, error)
    return HttpReply(0, str(error).encode())


def _interrupted(job: BatchJob, error: BaseException) -> bool:
    """A submitted batch whose caller stopped waiting (not a batch that failed or timed
    out): it is cancelled, so as not to pay for answers nobody reads."""
    return job.batch_id is not None and not isinstance(error, BatchTimeoutError | BatchAPIError)


def _drive(
    steps: Steps, perform: Callable[[HttpCall], HttpReply], sleep: Callable[[float], Any]
) -> Any:
    reply: HttpReply | None = None
    try:
        while True:
            step = steps.send(reply)
            if isinstance(step, Wait):
                sleep(step.seconds)
                reply = None
            else:
                reply = perform(step)
    except StopIteration as done:
        return done.value


async def _adrive(steps: Steps, perform: Callable[[HttpCall], Any]) -> Any:
    reply: HttpReply | None = None
    try:
        while True:
            step = steps.send(reply)
            if isinstance(step, Wait):
                await asyncio.sleep(step.seconds)
                reply = None
            else:
                reply = await perform(step)
    except StopIteration as done:
        return done.value


__all__ = [
    "BatchJob",
    "BatchRun",
    "BatchRunOptions",
    "PollSettings",
    "arun_batch",
    "run_batch",
]
