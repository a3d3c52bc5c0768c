"""A deferred batch of framework calls, framework-free: admit, submit, poll, fetch, settle.

Example:
    >>> from costopt_core.batch import OpenAIBatchAPI, batch_requests
    >>> from costopt_core.batch.imitation import ImitationBatchServer
    >>> class Runs:  # a face: each call is a run of its framework
    ...     def start(self, index): pass
    ...     def end(self, index, result, batch_id): return result.text.upper()
    ...     def fail(self, index, error): pass
    >>> with ImitationBatchServer(processing_s=0.01) as server:
    ...     api = OpenAIBatchAPI(server.api_key, server.openai_base_url)
    ...     requests = batch_requests("gpt-4o-mini", [[{"role": "user", "content": "hi"}]])
    ...     batch = DeferredBatch(api, requests, DeferredOptions(poll_interval_s=0.01))
    ...     answers = batch.run(Runs())
    >>> len(answers), isinstance(answers[0], str), batch.batch_id is not None
    (1, True, True)

A face starts one framework run per call (where a cost handler reserves its budget and
may refuse it with ``BudgetExceededError``), the calls admitted go to the provider as one
batch, and each run then ends with its answer or fails with its error; a batch that
failed as a whole fails every run. Those steps, and what ``return_exceptions`` changes,
are written once here (:meth:`DeferredBatch.steps`), driven sync (:meth:`~DeferredBatch.run`)
or async (:meth:`~DeferredBatch.arun`). The face only says how a run starts, ends and
fails in its framework (:class:`DeferredRuns`, :class:`AsyncDeferredRuns`).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, Self, TypeVar

from costopt_core.batch.client import BatchRun, BatchRunOptions
from costopt_core.batch.requests import BatchRequest, BatchRequestError, BatchResult
from costopt_core.batch.wire import BatchProvider
from costopt_core.ledger import BudgetExceededError


class DeferredPlan:
    """Which calls of a batch go to the provider, and what each one ends with.

    ``custom_ids`` name the calls in order; a call refused before submission (a budget)
    keeps its exception as its outcome.

    Example:
        >>> plan = DeferredPlan(["request-0", "request-1"])
        >>> plan.refuse(1, ValueError("over budget"))
        >>> plan.admitted
        [0]
        >>> outcome = plan.outcomes([BatchResult("request-0", text="hi")])
        >>> outcome[0].text, isinstance(outcome[1], ValueError)
        ('hi', True)
    """

    def __init__(self, custom_ids: Sequence[str]) -> None:
        self.custom_ids = list(custom_ids)
        self._refused: dict[int, BaseException] = {}

    def refuse(self, index: int, error: BaseException) -> None:
        """Call ``index`` is not submitted; it ends with ``error``."""
        self._refused[index] = error

    @property
    def refusal(self) -> BaseException | None:
        """The first refusal, if any (a batch without ``return_exceptions`` raises it)."""
        return next(iter(self._refused.values()), None)

    @property
    def admitted(self) -> list[int]:
        """The calls to submit, in order."""
        return [i for i in range(len(self.custom_ids)) if i not in self._refused]

    def outcomes(self, results: Sequence[BatchResult]) -> list[BatchResult | BaseException]:
        """Each call's outcome: its answered result, else an exception (why it was not
        submitted, or :class:`BatchRequestError` for a request the provider did not answer).
        """
        by_id = {r.custom_id: r for r in results}
        out: list[BatchResult | BaseException] = []
        for i, custom_id in enumerate(self.custom_ids):
            refused = self._refused.get(i)
            if refused is not None:
                out.append(refused)
                continue
            result = by_id.get(custom_id) or BatchResult(
                custom_id, error="no result came back", error_type="missing"
            )
            out.append(result if result.ok else BatchRequestError(result))
        return out

    def failed_all(self, error: BaseException) -> list[BaseException]:
        """Every call's outcome when the batch as a whole failed."""
        return [self._refused.get(i, error) for i in range(len(self.custom_ids))]


def raise_first(outputs: Sequence[Any]) -> None:
    """Raise the first exception in ``outputs`` (a batch called without
    ``return_exceptions``)."""
    for output in outputs:
        if isinstance(output, BaseException):
            raise output


class SecretValue(Protocol):
    """A key kept out of ``repr`` (pydantic's ``SecretStr``, as LangChain models hold it)."""

    def get_secret_value(self) -> str: ...


@dataclass(frozen=True)
class DeferredOptions(BatchRunOptions):
    """The keyword arguments of every face's ``deferred_batch`` / ``adeferred_batch``.

    ``return_exceptions``: an unanswered call's exception takes its place in the answers
    (else the first one is raised). ``provider``, ``base_url``, ``api_key``,
    ``model_name``: where the calls go, when the model does not say (or to override it).
    The rest is how the batch is waited for (:class:`BatchRunOptions`).

    Example:
        >>> options, params = DeferredOptions.split({"provider": "openai", "top_p": 0.5})
        >>> options.provider, params
        ('openai', {'top_p': 0.5})
        >>> options.filled({"provider": "anthropic", "model_name": "m"}).model_name
        'm'
    """

    return_exceptions: bool = False
    provider: str | None = None
    base_url: str | None = None
    api_key: str | SecretValue | None = None
    model_name: str | None = None

    @classmethod
    def of_call(cls, keywords: Mapping[str, Any], function: str) -> tuple[Self, dict[str, Any]]:
        """The options among a face's ``keywords``, and the model parameters sent with
        every request; a keyword that looks like a misspelt option is a TypeError.

        Model parameters (``temperature``, ``max_tokens``, ``tools``...) pass through,
        but a name costopt's own options have the shape of (ending in ``_s``, starting
        with ``poll``) or close to one of them would otherwise go to the provider with
        every request, and fail there, up to a day later.

        Example:
            >>> DeferredOptions.of_call({"temperature": 0, "timeout_s": 9}, "f")[1]
            {'temperature': 0}
            >>> DeferredOptions.of_call({"poll_intervall_s": 0.1}, "deferred_batch")
            Traceback (most recent call last):
            ...
            TypeError: deferred_batch() got unknown options ['poll_intervall_s'] (did you mean \
'poll_interval_s'?): the options are ['api_key', 'base_url', 'http_client', \
'max_poll_interval_s', 'model_name', 'poll_interval_s', 'provider', 'return_exceptions', \
'settings', 'timeout_s']; other keywords are model parameters sent with every request
        """
        options, params = cls.split(keywords)
        names = sorted(f.name for f in fields(cls) if f.init)
        wrong = sorted(k for k in params if _looks_like_option(k, names))
        if wrong:
            hints = [m[0] for k in wrong if (m := difflib.get_close_matches(k, names, 1, 0.6))]
            hint = f" (did you mean {', '.join(map(repr, hints))}?)" if hints else ""
            raise TypeError(
                f"{function}() got unknown options {wrong}{hint}: the options are {names}; "
                "other keywords are model parameters sent with every request"
            )
        return options, params

    def filled(self, defaults: Mapping[str, Any]) -> DeferredOptions:
        """These options, with ``defaults`` (e.g. a wrapper model's settings) where none
        was given."""
        names = {f.name for f in fields(self)}
        given = {k: v for k, v in defaults.items() if k in names and getattr(self, k) is None}
        return replace(self, **given)

    def target_keywords(self) -> dict[str, Any]:
        """Where the calls go, as the faces' ``batch_target`` takes it (the key as text)."""
        key = self.api_key
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "api_key": key if key is None or isinstance(key, str) else key.get_secret_value(),
            "model_name": self.model_name,
        }


def _looks_like_option(name: str, options: Sequence[str]) -> bool:
    return (
        name.endswith("_s")
        or name.startswith(("poll", "max_poll"))
        or bool(difflib.get_close_matches(name, options, 1, 0.85))
    )


Item = TypeVar("Item")
Converted = TypeVar("Converted")


def converted_inputs(
    inputs: Iterable[Item],
    convert: Callable[[Item], Converted],
    *,
    argument: str,
    accepted: str,
) -> list[Converted]:
    """Each of a deferred batch's ``inputs`` converted for its request; a TypeError
    naming ``argument`` (and saying what it ``accepted``) for a wrong one, or for a text
    or a non-sequence given in place of the list.

    Example:
        >>> converted_inputs(["hi"], str.upper, argument="inputs", accepted="texts")
        ['HI']
        >>> converted_inputs([42], str.upper, argument="inputs", accepted="texts")
        Traceback (most recent call last):
        ...
        TypeError: inputs[0] must be texts, got int
    """
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        raise TypeError(
            f"{argument} must be a list, each item {accepted}; got {type(inputs).__name__}"
        )
    if not inputs:
        raise ValueError(f"{argument} must hold at least one item ({accepted})")
    out: list[Converted] = []
    for i, item in enumerate(inputs):
        try:
            out.append(convert(item))
        except (TypeError, ValueError, NotImplementedError, KeyError, AttributeError) as exc:
            raise TypeError(
                f"{argument}[{i}] must be {accepted}, got {type(item).__name__}"
            ) from exc
    return out


class DeferredRuns(Protocol):
    """A face's runs of one deferred batch: call ``index``'s run in its framework."""

    def start(self, index: int) -> None:
        """Start the run (a cost handler reserves its budget; ``BudgetExceededError``
        refuses the call, which is then not submitted)."""
        ...

    def end(self, index: int, result: BatchResult, batch_id: str | None) -> Any:
        """End the run with the provider's answer; returns the framework's answer."""
        ...

    def fail(self, index: int, error: BaseException) -> None:
        """End the run with ``error`` (also called for a call whose start was refused)."""
        ...


class AsyncDeferredRuns(Protocol):
    """:class:`DeferredRuns` of an async face."""

    async def start(self, index: int) -> None: ...

    async def end(self, index: int, result: BatchResult, batch_id: str | None) -> Any: ...

    async def fail(self, index: int, error: BaseException) -> None: ...


#: One step of a deferred batch: a call of the face's runs or of the transport, made
#: by the driver (the async driver awaits what it returns).
Step = Callable[[], Any]
Steps = Generator[Step, Any, list[Any]]


class DeferredBatch:
    """One deferred batch: ``requests`` to ``api``, each the call of one framework run.

    :meth:`steps` is the whole flow, written once; :meth:`run` and :meth:`arun` drive it.
    ``batch_id`` is set once the provider has created the batch.
    """

    def __init__(
        self,
        api: BatchProvider,
        requests: Sequence[BatchRequest],
        options: DeferredOptions | None = None,
    ) -> None:
        self.api = api
        self.requests = list(requests)
        self.options = options or DeferredOptions()
        self.options.poll_settings()  # bad settings fail here, before any run starts
        self.plan = DeferredPlan([r.custom_id for r in self.requests])
        self.batch_id: str | None = None

    def run(self, runs: DeferredRuns) -> list[Any]:
        """Each call's answer (or exception, with ``return_exceptions``), in order."""
        cursor = _Cursor(self.steps(runs, BatchRun.run))
        while (step := cursor.next()) is not None:
            cursor.send(*_attempt(step))
        return cursor.result

    async def arun(self, runs: AsyncDeferredRuns) -> list[Any]:
        """Async :meth:`run`."""
        cursor = _Cursor(self.steps(runs, BatchRun.arun))
        while (step := cursor.next()) is not None:
            cursor.send(*await _aattempt(step))
        return cursor.result

    def steps(
        self, runs: DeferredRuns | AsyncDeferredRuns, submit: Callable[[BatchRun], Any]
    ) -> Steps:
        """Admit, submit, settle: yields the calls for the driver to make (sync or async)
        and is sent what each returned, or thrown what it raised."""
        plan, return_exceptions = self.plan, self.options.return_exceptions
        for i in range(len(self.requests)):
            try:
                yield functools.partial(runs.start, i)
            except BudgetExceededError as exc:
                plan.refuse(i, exc)
        refusal = plan.refusal
        if refusal is not None and not return_exceptions:
            yield from self._fail_all(runs, refusal)
            raise refusal
        try:
            results = (yield functools.partial(submit, self._batch_run())) if plan.admitted else []
        except GeneratorExit:
            raise
        except BaseException as exc:
            yield from self._fail_all(runs, exc)
            if return_exceptions and isinstance(exc, Exception):
                return plan.failed_all(exc)
            raise
        outputs: list[Any] = []
        for i, outcome in enumerate(plan.outcomes(results)):
            if isinstance(outcome, BaseException):
                yield functools.partial(runs.fail, i, outcome)
                outputs.append(outcome)
            else:
                outputs.append((yield functools.partial(runs.end, i, outcome, self.batch_id)))
        if not return_exceptions:
            raise_first(outputs)
        return outputs

    def _batch_run(self) -> BatchRun:
        admitted = [self.requests[i] for i in self.plan.admitted]
        return BatchRun(self.api, admitted, self.options, on_submit=self._submitted)

    def _submitted(self, batch_id: str) -> None:
        self.batch_id = batch_id

    def _fail_all(
        self, runs: DeferredRuns | AsyncDeferredRuns, error: BaseException
    ) -> Generator[Step, Any, None]:
        for i, outcome in enumerate(self.plan.failed_all(error)):
            yield functools.partial(runs.fail, i, outcome)


class _Cursor:
    """Where a driver stands in :meth:`DeferredBatch.steps`: the next step to make, and
    what the last one returned or raised (sent back into the flow)."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps
        self._reply: Any = None
        self._error: BaseException | None = None
        self.result: list[Any] = []

    def next(self) -> Step | None:
        """The next step, or None once the flow has returned (:attr:`result`)."""
        try:
            if self._error is None:
                return self._steps.send(self._reply)
            return self._steps.throw(self._error)
        except StopIteration as done:
            self.result = done.value
            return None

    def send(self, reply: Any, error: BaseException | None) -> None:
        self._reply, self._error = reply, error


def _attempt(step: Step) -> tuple[Any, BaseException | None]:
    # Interruptions too: the flow fails the runs of a batch it was waiting for.
    try:
        return step(), None
    except BaseException as exc:
        return None, exc


async def _aattempt(step: Step) -> tuple[Any, BaseException | None]:
    try:
        return await step(), None
    except BaseException as exc:  # task cancellation too, as in _attempt
        return None, exc


__all__ = [
    "AsyncDeferredRuns",
    "DeferredBatch",
    "DeferredOptions",
    "DeferredPlan",
    "DeferredRuns",
    "SecretValue",
    "converted_inputs",
    "raise_first",
]
