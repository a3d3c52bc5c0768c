"""Self-hosted (local) models as priced tiers: $0 per token, or an hourly host cost.

Example:
    >>> from costopt_core.local_models import is_local, price_status, set_hourly_cost
    >>> from costopt_core.pricing import PriceCatalog
    >>> catalog = PriceCatalog(use_genai_prices=False)
    >>> free = set_hourly_cost("llama3.1:8b", catalog=catalog)  # own hardware, no bill
    >>> free.input, free.output, free.source
    (0.0, 0.0, 'local')
    >>> price_status(catalog.get("llama3.1:8b"))  # "local", never a silent $0
    'local'
    >>> gpu = set_hourly_cost("qwen2.5:14b-q4", usd_per_hour=1.8, tokens_per_second=50,
    ...                       catalog=catalog)
    >>> round(gpu.output * 1e6, 2)  # USD per million output tokens, host kept busy
    10.0
    >>> gpu.source
    'local: $1.80/h, 50 tok/s out, 50 tok/s in'
    >>> is_local(catalog.get("qwen2.5:14b-q4")), price_status(None)
    (True, 'unpriced')

Any chat model that runs on your own machine (Ollama, llama.cpp, vLLM through their
LangChain / LlamaIndex integrations) is a tier like any other: give the router the
model, and register its price here under the name it reports (``ChatOllama(model=
"llama3.1:8b")`` reports ``"llama3.1:8b"``). Routed calls it answers then cost what its
price says and save the difference to the baseline tier, in the cost report.

Why a price source rather than a new kind of price: every cost path (the accountant,
budgets, projections) already prices with ``ModelPrice``; a local model is one whose
``source`` starts with ``"local"``, so a $0 figure reads as "local", not as "unpriced"
or as a price nobody set.

The hourly price per token is the host's cost spread over the tokens it produces while
busy: ``usd_per_hour / 3600 / tokens_per_second``, divided by ``utilization`` (the
share of hours it is busy; an idle hour costs the same). Input tokens are priced at the
prompt-processing speed, ``input_tokens_per_second``; left unset it equals the
generation speed, which over-states the cost of long prompts (prefill is usually several
times faster) rather than under-stating it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from costopt_core.pricing import ModelPrice, PriceCatalog, default_catalog

#: ``ModelPrice.source`` of a local model (followed by ``": ..."`` for an hourly cost).
LOCAL_SOURCE = "local"
_SECONDS_PER_HOUR = 3600
_SECONDS_PER_DAY = 86_400

PriceStatus = Literal["priced", "local", "unpriced"]


def _finite(name: str, value: object, *, positive: bool = False) -> float:
    low_ok = (lambda v: v > 0) if positive else (lambda v: v >= 0)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low_ok(value)
    ):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LocalHost:
    """A self-hosted model's running cost and speed.

    Example:
        >>> host = LocalHost(usd_per_hour=1.2, tokens_per_second=40,
        ...                  input_tokens_per_second=400)
        >>> host.seconds_per_request(1000, 200)  # 2.5 s prefill + 5 s generation
        7.5
        >>> host.requests_per_day_capacity(1000, 200)
        11520.0
        >>> LocalHost(usd_per_hour=1.2)
        Traceback (most recent call last):
        ...
        ValueError: tokens_per_second is needed to price a model at usd_per_hour=1.2 ...

    ``tokens_per_second`` is the host's total generation throughput (all concurrent
    requests together); ``utilization`` in (0, 1] is the share of its hours it is busy.
    """

    usd_per_hour: float = 0.0
    tokens_per_second: float | None = None
    input_tokens_per_second: float | None = None
    utilization: float = 1.0

    def __post_init__(self) -> None:
        cost = _finite("usd_per_hour", self.usd_per_hour)
        if self.tokens_per_second is None:
            if cost > 0:
                raise ValueError(
                    f"tokens_per_second is needed to price a model at usd_per_hour="
                    f"{self.usd_per_hour!r} (its generation speed, tokens/s > 0)"
                )
            if self.input_tokens_per_second is not None:
                raise ValueError("input_tokens_per_second needs tokens_per_second as well")
        else:
            _finite("tokens_per_second", self.tokens_per_second, positive=True)
        if self.input_tokens_per_second is not None:
            _finite("input_tokens_per_second", self.input_tokens_per_second, positive=True)
        share = _finite("utilization", self.utilization, positive=True)
        if share > 1:
            raise ValueError(f"utilization must be in (0, 1], got {self.utilization!r}")

    def _speeds(self) -> tuple[float, float] | None:
        # (prompt, generation) tokens per second; prompt speed defaults to generation's.
        if self.tokens_per_second is None:
            return None
        return self.input_tokens_per_second or self.tokens_per_second, self.tokens_per_second

    @property
    def daily_cost(self) -> float:
        """USD per day the host costs, busy or idle."""
        return self.usd_per_hour * 24

    def per_token(self) -> tuple[float, float]:
        """USD per (input, output) token, the hourly cost spread over the busy hours."""
        speeds = self._speeds()
        if self.usd_per_hour == 0 or speeds is None:
            return 0.0, 0.0
        per_second = self.usd_per_hour / _SECONDS_PER_HOUR / self.utilization
        return per_second / speeds[0], per_second / speeds[1]

    def seconds_per_request(self, input_tokens: float, output_tokens: float) -> float | None:
        """Host seconds one request of this size takes (None when no speed is given)."""
        speeds = self._speeds()
        if speeds is None:
            return None
        inp = _finite("input_tokens", input_tokens)
        out = _finite("output_tokens", output_tokens)
        return inp / speeds[0] + out / speeds[1]

    def requests_per_day_capacity(self, input_tokens: float, output_tokens: float) -> float | None:
        """Most requests of this size one host serves in a day, busy around the clock."""
        seconds = self.seconds_per_request(input_tokens, output_tokens)
        if seconds is None:
            return None
        return math.inf if seconds == 0 else _SECONDS_PER_DAY / seconds

    def label(self) -> str:
        """The price source: ``"local"`` or ``"local: $X/h, N tok/s out, M tok/s in"``."""
        speeds = self._speeds()
        if self.usd_per_hour == 0 or speeds is None:
            return LOCAL_SOURCE
        parts = [
            f"${self.usd_per_hour:,.2f}/h",
            f"{speeds[1]:g} tok/s out",
            f"{speeds[0]:g} tok/s in",
        ]
        if self.utilization < 1:
            parts.append(f"busy {self.utilization:.0%}")
        return f"{LOCAL_SOURCE}: " + ", ".join(parts)


def set_hourly_cost(
    model: str,
    usd_per_hour: float = 0.0,
    tokens_per_second: float | None = None,
    *,
    input_tokens_per_second: float | None = None,
    utilization: float = 1.0,
    catalog: PriceCatalog | None = None,
) -> ModelPrice:
    """Register ``model`` as self-hosted, costing ``usd_per_hour`` (default $0: hardware
    you own and do not bill), and return its per-token price.

    The price goes into ``catalog`` (default: the process-wide one that the cost handlers
    and routers price from) with a ``"local"`` source, so reports call it local.
    See the module docstring for how the hourly cost becomes a per-token price.
    """
    host = LocalHost(
        usd_per_hour=usd_per_hour,
        tokens_per_second=tokens_per_second,
        input_tokens_per_second=input_tokens_per_second,
        utilization=utilization,
    )
    input_price, output_price = host.per_token()
    return (catalog or default_catalog).set_price(
        model,
        input_per_token=input_price,
        output_per_token=output_price,
        source=host.label(),
    )


def is_local(price: ModelPrice | None) -> bool:
    """True for a price registered by :func:`set_hourly_cost`."""
    if price is None:
        return False
    return price.source == LOCAL_SOURCE or price.source.startswith(LOCAL_SOURCE + ":")


def price_status(price: ModelPrice | None) -> PriceStatus:
    """How a report should call a model's cost: ``"local"`` (self-hosted, possibly $0),
    ``"priced"`` (a provider's price) or ``"unpriced"`` (no price known)."""
    if price is None:
        return "unpriced"
    return "local" if is_local(price) else "priced"


__all__ = [
    "LOCAL_SOURCE",
    "LocalHost",
    "PriceStatus",
    "is_local",
    "price_status",
    "set_hourly_cost",
]
