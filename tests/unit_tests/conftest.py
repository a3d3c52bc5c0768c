"""Fixtures the unit tests of several packages share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from costopt_core.batch.imitation import ImitationBatchServer


@pytest.fixture
def batch_server() -> Iterator[ImitationBatchServer]:
    """A local imitation of OpenAI's and Anthropic's batch APIs (real HTTP), answering
    after 20 ms."""
    with ImitationBatchServer(processing_s=0.02) as imitation:
        yield imitation
