"""The warnings about a model whose calls cannot be costed in full, each logged once per
model per process (a log line per call would drown the application's).

Example:
    >>> from costopt_core.model_warnings import calls_of, warn_unpriced
    >>> warn_unpriced("doc-no-price")  # logged once; later calls of it say nothing
    >>> calls_of("doc-no-price"), calls_of(None)
    ("calls of model 'doc-no-price'", 'calls that name no model')

A model with no price (``warn_unpriced``), one that answered without its token usage
(``warn_unmetered``), one a budget cannot quote until it answers (``warn_unquoted``),
one whose answers have no price either (``warn_uncountable``). Each names the remedy
(``set_price`` or usage reporting).
"""

from __future__ import annotations

import logging
import threading

# The accountant's logger, as before these warnings had a module of their own: an
# application that quiets or routes "costopt_core.accounting" still gets them there.
logger = logging.getLogger("costopt_core.accounting")

_warned_lock = threading.Lock()
_warned_unpriced: set[str] = set()
_warned_unmetered: set[str] = set()
_warned_unquoted: set[str] = set()
_warned_uncountable: set[str] = set()


def _warn_once(warned: set[str], model: str, message: str, *args: object) -> None:
    # Once per model per process: a log line per call would drown the application's.
    with _warned_lock:
        if model in warned:
            return
        warned.add(model)
    logger.warning(message, *args)


def warn_unpriced(model: str) -> None:
    """Log once per process that ``model`` has no price (its cost reads "unpriced")."""
    _warn_once(
        _warned_unpriced,
        model,
        "no price known for model %r: its calls are reported as 'unpriced' (tokens "
        "counted, cost unknown). Register one with set_price(%r, input_per_token=..., "
        "output_per_token=...) from costopt_core (or langchain_costopt)",
        model,
        model,
    )


def warn_unmetered(model: str, estimated: bool = False) -> None:
    """Log once per process that ``model`` answered without reporting token usage."""
    _warn_once(
        _warned_unmetered,
        model,
        "model %r reported no token usage: %s",
        model,
        "its calls are costed from their prompt and answer text and marked estimated"
        if estimated
        else "its calls are counted with an unknown cost (reported as 'unpriced'), not as $0",
    )


def calls_of(name: str | None) -> str:
    """How a message names the calls of request model ``name`` (``None``: no name).

    Example:
        >>> calls_of("my-deployment")
        "calls of model 'my-deployment'"
    """
    return f"calls of model {name!r}" if name else "calls that name no model"


def warn_unquoted(name: str | None) -> None:
    """Log once per process that calls of ``name`` have no price a budget can quote them on
    (each reserves a bound until one answers with a priced model)."""
    _warn_once(
        _warned_unquoted,
        repr(name),
        "%s have no known price: until one answers with a priced model (whose price then "
        "quotes them) each reserves its prompt and output cap at the dearest prices of "
        "any priced model, or, when that does not fit, what is left of the budget (one "
        "at a time). Register a price with set_price(%r, input_per_token=..., "
        "output_per_token=...) to budget them like any other call",
        calls_of(name),
        name or "<model name>",
    )


def warn_uncountable(name: str | None, answer: str) -> None:
    """Log once per process that calls of ``name`` are answered by ``answer``, a model with
    no price either: a budget cannot count their spend."""
    _warn_once(
        _warned_uncountable,
        answer,
        "%s are answered by %r, a model with no known price: a budget cannot count "
        "what they spend, so later ones are refused (on_budget='raise' or 'downgrade'; "
        "'warn' warns). Register a price with set_price(%r, input_per_token=..., "
        "output_per_token=...)",
        calls_of(name),
        answer,
        answer,
    )


__all__ = [
    "calls_of",
    "warn_uncountable",
    "warn_unmetered",
    "warn_unpriced",
    "warn_unquoted",
]
