"""LangChain's standard unit suite for RouterChatModel over simulated tier models."""

from __future__ import annotations

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from tests.router_params import RouterParams

# The suites must never reach the network.
pytestmark = pytest.mark.allow_hosts([])


class TestRouterChatModelUnit(RouterParams, ChatModelUnitTests):
    @property
    def model_override_value(self) -> str:
        return "claude-3.5-sonnet"
