"""Model prices: Pydantic's ``genai-prices`` database, with the seed's models and the
user's overrides layered on top. Resolved once per model name, then a dict hit.

Example:
    >>> from costopt_core import estimate_cost, get_price, set_price
    >>> round(get_price("gpt-4o-mini").output * 1e6, 4)  # USD per million tokens
    0.6
    >>> set_price("my-finetune", input_per_token=1e-6, output_per_token=2e-6).source
    'user'
    >>> get_price("my-finetune").cost(input_tokens=1000, output_tokens=500)
    0.002
    >>> get_price("no-such-model") is None  # unknown: flagged by the cost handlers, never $0
    True
    >>> estimate_cost("请翻译这句话")["model"]
    'deepseek-v3'

Token conventions are LangChain's ``usage_metadata``: ``input_tokens`` *includes* the
cache-read and cache-write tokens, ``output_tokens`` *includes* reasoning tokens.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from typing import Any

logger = logging.getLogger(__name__)

_MTOK = 1_000_000


_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")


def check_amount(name: str, value: Any, unit: str = "USD") -> float:
    """``value`` as a float if it is a finite number >= 0, else a ValueError naming
    ``name`` and ``unit``: the one check of every price, budget and estimate in dollars.
    One NaN would turn every total into NaN, and a NaN total passes no budget check.

    Example:
        >>> check_amount("limit_usd", 5)
        5.0
        >>> check_amount("input_per_token", float("nan"), "USD per token")
        Traceback (most recent call last):
        ...
        ValueError: input_per_token must be a finite number >= 0 (USD per token), got nan
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0 ({unit}), got {value!r}")
    return float(value)


#: The share of the standard price that OpenAI's Batch API and Anthropic's Message
#: Batches take off (both: 50 %), for models whose catalog entry says nothing else.
DEFAULT_BATCH_DISCOUNT = 0.5


def check_batch_discount(name: str, value: Any) -> float:
    """A batch discount: a share in [0, 1) (1 would make batch calls free)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_price(name: str, value: Any) -> float:
    """A price in USD per token, checked where it enters (see :func:`check_amount`)."""
    return check_amount(name, value, "USD per token")


@dataclass(frozen=True)
class ModelPrice:
    """USD per token. ``None`` for a cache / reasoning price means "billed as input /
    output". ``batch_discount`` is the share taken off every token's price when the
    call goes through the provider's batch API (OpenAI Batch and Anthropic Message
    Batches both bill half the standard rates).

    Example:
        >>> price = ModelPrice(input=1e-6, output=4e-6)
        >>> price.cost(1000, 250), price.cost(1000, 250) * (1 - price.batch_discount)
        (0.002, 0.001)
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    source: str = "user"
    model: str = ""
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    def __post_init__(self) -> None:
        for name in _PRICE_FIELDS:
            value = getattr(self, name)
            if value is None and name in ("input", "output"):
                raise ValueError(f"ModelPrice.{name} is required")
            if value is not None:
                check_price(f"ModelPrice.{name}", value)
        check_batch_discount("ModelPrice.batch_discount", self.batch_discount)
        self._resolve_rates()

    def _resolve_rates(self) -> None:
        # Each kind of token's rate, "billed as input / output" resolved once: a call is
        # priced on the call path, and this spares it the reads and the None checks.
        rates = (
            self.input,
            self.output,
            self.input if self.cache_read is None else self.cache_read,
            self.input if self.cache_write is None else self.cache_write,
            self.output if self.reasoning is None else self.reasoning,
        )
        object.__setattr__(self, "_rates", rates)  # frozen: set as the constructor does

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickling skips __post_init__: a price pickled before the rates were kept
        # (or by anyone) gets them resolved here.
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self._resolve_rates()

    def cost(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """Dollar cost of one call's usage (LangChain token conventions)."""
        counts = (
            max(input_tokens, cache_read_tokens + cache_write_tokens),
            max(output_tokens, reasoning_tokens),
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
        )
        return self.bill(counts)[0]

    def bill(self, counts: tuple[int, int, int, int, int]) -> tuple[float, float]:
        """The cost of one call's token counts (``cost``'s arguments as a tuple, cache
        and reasoning tokens within their totals: ``accounting.usage_counts`` makes
        them so) and its cost had no prompt cache read or written any of it (the
        baseline of its cache saving): one pass, as the cost handlers price each call.

        Example:
            >>> price = ModelPrice(input=1e-6, output=2e-6, cache_read=1e-7)
            >>> [round(usd, 9) for usd in price.bill((100, 10, 60, 0, 0))]  # 60 read cached
            [6.6e-05, 0.00012]
        """
        inp, out, read, write, reasoning = counts
        rate_in, rate_out, rate_read, rate_write, rate_reasoning = self._rates  # type: ignore[attr-defined]
        # Summed in one order, the catalog's (input, cache read, cache write, output,
        # reasoning): totals compared with a hand computation match to the last digit.
        plain_out = (out - reasoning) * rate_out
        think = reasoning * rate_reasoning
        if read or write:
            plain_in = (inp - read - write) * rate_in
            cost = plain_in + read * rate_read + write * rate_write + plain_out + think
            return cost, inp * rate_in + plain_out + think
        cost = inp * rate_in + plain_out + think
        return cost, cost


# The seed's table ("as of 2024", USD per 1K tokens), kept under the seed's names. It is
# consulted only for names genai-prices does not know (e.g. "deepseek-v3").
SEED_MODELS: dict[str, dict[str, Any]] = {
    "simple": {
        "model": "deepseek-v3",
        "input_per_1k": 0.00014,
        "output_per_1k": 0.00028,
        "max_tokens": 65_536,
        "latency_ms": 200,
    },
    "medium": {
        "model": "gpt-4o-mini",
        "input_per_1k": 0.00015,
        "output_per_1k": 0.0006,
        "max_tokens": 128_000,
        "latency_ms": 400,
    },
    "complex": {
        "model": "claude-3.5-sonnet",
        "input_per_1k": 0.003,
        "output_per_1k": 0.015,
        "max_tokens": 200_000,
        "latency_ms": 800,
    },
}


def _seed_prices() -> dict[str, ModelPrice]:
    return {
        spec["model"]: ModelPrice(
            input=spec["input_per_1k"] / 1000,
            output=spec["output_per_1k"] / 1000,
            source="seed",
            model=spec["model"],
        )
        for spec in SEED_MODELS.values()
    }


def _decimal_to_per_token(value: Any) -> float | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # TieredPrices: the base (lowest) tier
    return float(base) / _MTOK


def _from_genai_prices(model: str) -> ModelPrice | None:
    try:
        from genai_prices import data_snapshot
    except ImportError:  # pragma: no cover - a core dependency
        return None
    snapshot = data_snapshot.get_snapshot()
    candidates = [model]
    if "/" in model:
        candidates.append(model.rsplit("/", 1)[1])
    for ref in candidates:
        try:
            provider, info = snapshot.find_provider_model(ref, None, None, None)
        except LookupError:
            continue
        prices = info.get_prices(datetime.now(tz=UTC))
        input_price = _decimal_to_per_token(getattr(prices, "input_mtok", None))
        output_price = _decimal_to_per_token(getattr(prices, "output_mtok", None))
        if input_price is None or output_price is None:
            continue
        return ModelPrice(
            input=input_price,
            output=output_price,
            cache_read=_decimal_to_per_token(getattr(prices, "cache_read_mtok", None)),
            cache_write=_decimal_to_per_token(getattr(prices, "cache_write_mtok", None)),
            source=f"genai-prices:{provider.id}/{info.id}",
            model=model,
        )
    return None


class PriceCatalog:
    """Thread-safe price lookup: user overrides > genai-prices > the seed's table."""

    def __init__(self, *, use_genai_prices: bool = True) -> None:
        self._lock = threading.Lock()
        self._overrides: dict[str, ModelPrice] = {}
        self._seed = _seed_prices()
        self._resolved: dict[str, ModelPrice | None] = {}
        self._use_genai_prices = use_genai_prices

    def set_price(
        self,
        model: str,
        *,
        input_per_token: float,
        output_per_token: float,
        cache_read_per_token: float | None = None,
        cache_write_per_token: float | None = None,
        reasoning_per_token: float | None = None,
        source: str = "user",
        batch_discount: float = DEFAULT_BATCH_DISCOUNT,
    ) -> ModelPrice:
        """Register or override ``model``'s price (USD per token) in this catalog and
        return it. A cache or reasoning price left ``None`` is billed as input / output.
        ``batch_discount``: the share off with the provider's batch API (0.5 = half price).
        ``source`` labels where the price came from (``costopt_core.local_models`` marks
        self-hosted models with it).

        Example:
            >>> catalog = PriceCatalog(use_genai_prices=False)
            >>> price = catalog.set_price("m", input_per_token=1e-6, output_per_token=4e-6)
            >>> catalog.get("M").cost(input_tokens=1000, output_tokens=250)  # names: any case
            0.002
        """
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        # Checked under the caller's argument names (ModelPrice would name its fields).
        given = {
            "input_per_token": input_per_token,
            "output_per_token": output_per_token,
            "cache_read_per_token": cache_read_per_token,
            "cache_write_per_token": cache_write_per_token,
            "reasoning_per_token": reasoning_per_token,
        }
        for name, value in given.items():
            if value is not None or name in ("input_per_token", "output_per_token"):
                check_price(name, value)
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"source must be a non-empty str, got {source!r}")
        check_batch_discount("batch_discount", batch_discount)
        price = ModelPrice(
            *given.values(), source=source, model=model, batch_discount=batch_discount
        )
        with self._lock:
            self._overrides[model.strip().lower()] = price
            self._resolved.clear()
        return price

    def load_litellm_json(self, path: str | PathLike[str]) -> int:
        """Load prices from a LiteLLM ``model_prices_and_context_window.json`` file.

        Returns the number of models loaded; entries without token prices are skipped.
        """
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a JSON object of model -> prices")
        loaded = 0
        for model, spec in data.items():
            if model == "sample_spec" or not isinstance(spec, Mapping):
                continue
            inp, out = spec.get("input_cost_per_token"), spec.get("output_cost_per_token")
            if inp is None or out is None:
                continue
            try:
                self.set_price(
                    model,
                    input_per_token=float(inp),
                    output_per_token=float(out),
                    cache_read_per_token=_opt_float(spec.get("cache_read_input_token_cost")),
                    cache_write_per_token=_opt_float(spec.get("cache_creation_input_token_cost")),
                    reasoning_per_token=_opt_float(spec.get("output_cost_per_reasoning_token")),
                )
            except (TypeError, ValueError) as exc:  # Python's json reads NaN and Infinity
                raise ValueError(f"{path}: model {model!r}: {exc}") from exc
            loaded += 1
        return loaded

    def get(self, model: str | None) -> ModelPrice | None:
        """The price of ``model``, or ``None`` when no source knows it."""
        if not model:
            return None
        try:
            return self._resolved[model]
        except KeyError:
            pass
        price = self._resolve(model)
        with self._lock:
            self._resolved[model] = price
        return price

    def _resolve(self, model: str) -> ModelPrice | None:
        key = model.strip().lower()
        with self._lock:
            override = self._overrides.get(key)
        if override is not None:
            return override
        if self._use_genai_prices:
            try:
                found = _from_genai_prices(key)
            except Exception:  # a broken price snapshot must not break the user's call
                logger.exception("genai-prices lookup failed for %r", model)
                found = None
            if found is not None:
                return found
        return self._seed.get(key)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()
            self._resolved.clear()


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


#: The process-wide catalog, the one the cost handlers and routers price from.
default_catalog = PriceCatalog()

# The module's functions are that catalog's methods, as ``random.random`` is a hidden
# ``Random``'s: ``get_price(model)`` and ``set_price(model, input_per_token=...,
# output_per_token=...)`` read and change the prices of this process.
get_price = default_catalog.get
set_price = default_catalog.set_price
