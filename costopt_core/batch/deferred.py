"""What a face does around a deferred batch, framework-free: admit, submit, settle.

Example:
    >>> from costopt_core.batch.requests import BatchResult
    >>> plan = DeferredPlan(["request-0", "request-1"])
    >>> plan.refuse(1, ValueError("over budget"))
    >>> plan.admitted
    [0]
    >>> outcome = plan.outcomes([BatchResult("request-0", text="hi")])
    >>> outcome[0].text, isinstance(outcome[1], ValueError)
    ('hi', True)

A face starts one framework run per call (where a cost handler reserves its budget and
may refuse it), submits only the calls admitted, then ends each run with its result or
its error. Those steps are the same in both faces and in sync and async code, so they
are here; the face only says how a run starts and ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from costopt_core.batch.requests import BatchRequestError, BatchResult


class DeferredPlan:
    """Which calls of a batch go to the provider, and what each one ends with.

    ``custom_ids`` name the calls in order; a call refused before submission (a budget)
    keeps its exception as its outcome.
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


__all__ = ["DeferredPlan", "raise_first"]
