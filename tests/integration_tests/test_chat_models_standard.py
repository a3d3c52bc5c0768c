"""LangChain's standard integration suite for RouterChatModel over tool-calling
simulated tier models (offline: the suite is not allowed any network connection)."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.router_params import RouterParams

pytestmark = pytest.mark.allow_hosts([])


class TestRouterChatModelIntegration(RouterParams, ChatModelIntegrationTests):
    @property
    def model_override_value(self) -> str:
        # Names no tier, so it is passed through to whichever tier answers.
        return "gpt-4.1-nano"

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False  # the simulator has no schema-less JSON mode

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True
