"""Models a budget cannot quote: a call that names a model with no price (an Azure
deployment, a proxy alias, no name at all), what the accountant learns of it from its
answers, and the dearest prices that bound such a call until then.

Example:
    >>> from costopt_core import set_price
    >>> from costopt_core.pricing import default_catalog
    >>> _ = set_price("doc-answerer", input_per_token=1e-6, output_per_token=2e-6)
    >>> models = UnquotedModels()
    >>> models.hold("reservation-1", "doc-deployment", ())
    >>> models.settled("reservation-1", "doc-answerer", default_catalog)
    >>> models.answered_by  # later calls of the deployment are quoted on this price
    {'doc-deployment': 'doc-answerer'}

``CostAccountant`` keeps one ``UnquotedModels`` and admits such calls (see its
``admit``); this module holds what it remembers and the bound it reserves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from costopt_core.model_warnings import calls_of, warn_uncountable
from costopt_core.pricing import SEED_MODELS, PriceCatalog

# The accountant's logger, as before this module was split from it.
logger = logging.getLogger("costopt_core.accounting")

#: Request names remembered (with the priced model that answered them, or the unpriced
#: one) per accountant; beyond this many the oldest is forgotten.
_NAMES_KEPT = 256
#: Reservations of calls of unquoted models waiting for their answer, per accountant.
_PENDING_KEPT = 4096


def _keep(names: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    # A bounded insertion-ordered dict: the oldest entry goes first.
    names.pop(key, None)
    names[key] = value
    if len(names) > limit:
        del names[next(iter(names))]


def _per_token(price: object) -> float:
    # genai-prices gives USD per million tokens, a tiered price by its base tier (the
    # catalog prices calls on that tier, so a bound on what it books reads it too).
    base = getattr(price, "base", price)
    return float(base) / 1_000_000 if base is not None else 0.0  # type: ignore[arg-type]


_listed_lock = threading.Lock()
_listed_dearest: tuple[float, float] | None = None


def dearest_listed_prices() -> tuple[float, float]:
    """The dearest input and output prices (USD per token) of every model the shipped
    price sources list (genai-prices' snapshot, the seed's table), each on its own.

    Example:
        >>> dear_in, dear_out = dearest_listed_prices()
        >>> 0 < dear_in and 0 < dear_out
        True

    Read once per process: both sources are fixed while it runs."""
    global _listed_dearest
    with _listed_lock:
        if _listed_dearest is not None:
            return _listed_dearest
        dear_in = max(spec["input_per_1k"] for spec in SEED_MODELS.values()) / 1000
        dear_out = max(spec["output_per_1k"] for spec in SEED_MODELS.values()) / 1000
        try:
            from genai_prices import data_snapshot

            now = datetime.now(tz=UTC)
            for provider in data_snapshot.get_snapshot().providers:
                for model in provider.models:
                    prices = model.get_prices(now)
                    for field_name in ("input_mtok", "cache_write_mtok", "cache_read_mtok"):
                        dear_in = max(dear_in, _per_token(getattr(prices, field_name, None)))
                    dear_out = max(dear_out, _per_token(getattr(prices, "output_mtok", None)))
        except Exception:  # a broken snapshot: the seed and the prices seen still bound
            logger.exception("reading genai-prices' dearest prices failed")
        _listed_dearest = (dear_in, dear_out)
        return _listed_dearest


class UnquotedModels:
    """What an accountant learns of the models a call names without a price (an Azure
    deployment, a proxy alias, no name at all): which priced model answered each, so
    later calls of that name are quoted on its price; or that the answer itself had no
    price, so the budget cannot count that model's calls. And which of its calls in
    flight hold all that was left of a budget (their bound did not fit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answered_by: dict[str | None, str] = {}  # request name -> priced answerer
        self.uncountable: dict[str | None, str] = {}  # request name -> unpriced answerer
        # reservation id -> (request name, the call's other models: a router's tiers)
        self.pending: dict[str, tuple[str | None, tuple[str | None, ...]]] = {}
        self.rest: dict[str, tuple[str | None, float]] = {}  # reservation -> name, expiry

    def hold(
        self,
        reservation_id: str,
        name: str | None,
        others: tuple[str | None, ...],
        rest_until: float | None = None,
    ) -> None:
        with self._lock:
            _keep(self.pending, reservation_id, (name, others), _PENDING_KEPT)
            if rest_until is not None:
                _keep(self.rest, reservation_id, (name, rest_until), _PENDING_KEPT)

    def settled(
        self,
        reservation_id: str | None,
        answer: str,
        catalog: PriceCatalog,
        tier: str | None = None,
        router_models: Sequence[str] | None = None,
    ) -> None:
        """The call holding ``reservation_id`` was answered by ``answer`` (from router
        tier ``tier``, whose tiers name ``router_models``): learn it, if it is that
        name's own answer."""
        with self._lock:
            held = self.pending.pop(reservation_id, None)  # type: ignore[arg-type]
            self.rest.pop(reservation_id, None)  # type: ignore[arg-type]
        if held is None:
            return
        name, others = held
        if tier is not None and answer != name and answer in {*others, *(router_models or ())}:
            # Another tier answered (a cascade climbed past the unpriced one): its model
            # says nothing of what this name answers with.
            return
        self.answered(name, answer, catalog)

    def answered(self, name: str | None, answer: str, catalog: PriceCatalog) -> None:
        price = catalog.get(answer)
        if price is None:
            with self._lock:
                _keep(self.uncountable, name, answer, _NAMES_KEPT)
            warn_uncountable(name, answer)
            return
        with self._lock:
            self.uncountable.pop(name, None)
            known = catalog.get(self.answered_by.get(name))
            if known is None or known.output <= price.output:  # the dearer one bounds both
                _keep(self.answered_by, name, answer, _NAMES_KEPT)

    def drop(self, reservation_id: str) -> None:
        with self._lock:
            self.pending.pop(reservation_id, None)
            self.rest.pop(reservation_id, None)

    def holding_rest(self) -> list[str | None]:
        """The names of the calls in flight that hold what was left of a budget (the
        ledger let go of those whose reservation expired)."""
        now = time.time()
        with self._lock:
            return [name for name, until in self.rest.values() if until > now]


def holding_rest_note(names: Sequence[str | None]) -> str:
    """What a budget refusal adds when calls of unpriced models (``names``, non-empty) hold
    what was left of the budget.

    Example:
        >>> print(holding_rest_note(["my-deployment"]))  # doctest: +ELLIPSIS
        ; what was left of it is held by 1 call(s) in flight ... (calls of model 'my-deployment')...
    """
    name = names[0]
    return (
        f"; what was left of it is held by {len(names)} call(s) in flight of a model with "
        f"no known price ({calls_of(name)}), until it answers. Register a price with "
        f"set_price({name or '<model name>'!r}, input_per_token=..., output_per_token=...) "
        "so its calls reserve only what they can cost"
    )


__all__ = ["UnquotedModels", "dearest_listed_prices", "holding_rest_note"]
