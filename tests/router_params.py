"""What LangChain's standard suites (unit and integration) are told about RouterChatModel:
one definition for both subclasses."""

from __future__ import annotations

from typing import Any

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel


class RouterParams:
    """A router over three simulated tiers that call tools and answer in a schema."""

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
