"""Plain slots for the state of LlamaIndex's pydantic components (handlers, wrappers).

A pydantic private attribute is read through a failed attribute lookup and two
``__getattr__`` calls (about 1.5 us each); the cost handler and the wrappers read their
state several times per LLM call, which made a fast model's call twice as slow. A slot is
read in C. pydantic's ``__copy__`` copies fields and private attributes but not a
subclass's slots: :class:`SlotsCopied` carries them over (shared, as a shallow copy
shares private attributes).

Example:
    >>> import copy
    >>> from pydantic import BaseModel
    >>> class Counter(SlotsCopied, BaseModel):
    ...     __slots__ = ("_seen",)
    ...     def model_post_init(self, context):
    ...         self._seen = []
    >>> original = Counter()
    >>> copy.copy(original)._seen is original._seen
    True
"""

from __future__ import annotations

import copy
import pickle
from typing import Any, ClassVar, Self


class SlotsCopied:
    """Mixin (before the pydantic base): a shallow copy keeps the instance's slots, and
    pickling carries them as the base carried private attributes."""

    __slots__ = ()

    def __copy__(self) -> Self:
        clone = super().__copy__()  # type: ignore[misc]
        for name, value in _slot_values(self).items():
            object.__setattr__(clone, name, value)
        return clone

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        clone = super().__deepcopy__(memo)  # type: ignore[misc]
        for name, value in _slot_values(self).items():
            object.__setattr__(clone, name, copy.deepcopy(value, memo))
        return clone

    def __eq__(self, other: object) -> bool:
        # pydantic compares fields and private attributes: the state in slots counts too.
        if self is other:
            return True
        if type(other) is not type(self):
            return NotImplemented
        return bool(super().__eq__(other)) and _slot_values(self) == _slot_values(other)  # type: ignore[misc]

    __hash__ = None  # type: ignore[assignment]

    #: Pickle leaves out slots whose values cannot be pickled, as LlamaIndex's
    #: ``BaseComponent`` (an LLM's base) does with private attributes; else pickling
    #: fails on them, as pydantic's does.
    _PICKLE_WHAT_PICKLES: ClassVar[bool] = False

    def __getstate__(self) -> dict[Any, Any]:
        state = dict(super().__getstate__())  # type: ignore[misc]
        slots = _slot_values(self)
        if self._PICKLE_WHAT_PICKLES:
            slots = {name: value for name, value in slots.items() if _pickles(value)}
        state[_STATE_KEY] = slots
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        slots = state.pop(_STATE_KEY, {})
        super().__setstate__(state)  # type: ignore[misc]
        for name, value in slots.items():
            object.__setattr__(self, name, value)


_STATE_KEY = "costopt_slots"


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _slot_values(instance: object) -> dict[str, Any]:
    values = {}
    for cls in type(instance).__mro__:
        names: Any = cls.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            # pydantic's own slots ("__dict__", ...) are its to copy; skip one never set.
            if not name.startswith("__") and hasattr(instance, name):
                values[name] = getattr(instance, name)
    return values


__all__ = ["SlotsCopied"]
