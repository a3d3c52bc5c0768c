"""Shared fixture of the LlamaIndex tests: cost handlers registered on the root
dispatcher for one test, unregistered after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llamaindex_costopt import CostEventHandler


@pytest.fixture
def make_handler() -> Iterator[Callable[..., CostEventHandler]]:
    made: list[CostEventHandler] = []

    def make(**kwargs: Any) -> CostEventHandler:
        handler = CostEventHandler(**kwargs).register()
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.unregister()
