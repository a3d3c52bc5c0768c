"""LangChain's standard unit suite for RouterChatModel over simulated tier models."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

# The suites must never reach the network.
pytestmark = pytest.mark.allow_hosts([])


class TestRouterChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[RouterChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {
                "simple": SimulatedChatModel(model_name="deepseek-v3"),
                "medium": SimulatedChatModel(model_name="gpt-4o-mini"),
                "complex": SimulatedChatModel(model_name="claude-3.5-sonnet"),
            }
        }

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "claude-3.5-sonnet"
