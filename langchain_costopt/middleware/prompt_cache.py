"""PromptCacheMiddleware: keep an agent's prompt prefix stable and cacheable by the provider.

Example:
    >>> from langchain.agents import create_agent
    >>> from langchain_costopt import CostCallbackHandler, set_price
    >>> from langchain_costopt.middleware import PromptCacheMiddleware
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> _ = set_price("pc-claude", input_per_token=3e-6, output_per_token=1.5e-5,
    ...               cache_read_per_token=3e-7, cache_write_per_token=3.75e-6)
    >>> model = SimulatedChatModel(model_name="pc-claude", prompt_cache="explicit",
    ...                            prompt_cache_min_tokens=100)
    >>> cache = PromptCacheMiddleware(provider="anthropic")
    >>> agent = create_agent(model, tools=[], system_prompt="You answer ACME questions. " * 30,
    ...                      middleware=[cache])
    >>> handler = CostCallbackHandler()
    >>> for question in ("Where is my order?", "How do I return a parcel?"):
    ...     _ = agent.invoke({"messages": [("user", question)]}, {"callbacks": [handler]})
    >>> handler.to_dict()["saved_provider_cache_usd"] > 0, cache.stats()["stable_share"]
    (True, 1.0)

Providers bill a repeated prompt prefix (system prompt, tools, earlier turns) at a
fraction of the input price, but only while it is the same byte for byte. The middleware:

* marks the request cacheable (``cache_control``) for models whose provider caches only
  marked prefixes (Anthropic), and for a ``RouterChatModel`` with such a tier (the router
  and ``CostRoutingMiddleware`` hand the mark only to those tiers); providers that cache
  long prefixes by themselves (OpenAI, Gemini) get no mark;
* hands the tools over in one order (sorted by name) so that a tool list assembled in a
  varying order does not change the prefix;
* watches the stable part (system prompt + tools) per model and logs, once, what changed
  when it changes between calls (a timestamp or request id in a system prompt makes every
  call a cache miss): :meth:`stats` says how stable it was.

Order: list it after ``CostRoutingMiddleware`` and after any middleware that writes the
system prompt (``@dynamic_prompt``), so that it sees the tier's model and the prompt as
sent (the first middleware in the list wraps the others).

The saving is read from the usage the provider reports (cache-read tokens) by the cost
handlers and shown apart from this plugin's own cache (``saved_provider_cache_usd``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest
from langchain_core.utils.function_calling import convert_to_openai_tool

from costopt_core.prompt_prefix import PrefixWatch, caching_rule
from langchain_costopt.chat_models import RouterChatModel, model_name_of
from langchain_costopt.messages import message_text
from langchain_costopt.middleware.routing import ACallNext, CallNext, ModelResult

Provider = Literal["auto", "anthropic", "none"]
_PROVIDERS = ("auto", "anthropic", "none")
_TTLS = ("5m", "1h")


def needs_cache_mark(model: Any) -> bool:
    """Whether ``model`` (or, for a router, one of its tiers) caches only marked prefixes."""
    if isinstance(model, RouterChatModel):
        return any(needs_cache_mark(tier) for tier in model.models.values())
    llm_type = getattr(model, "_llm_type", None)
    return caching_rule(
        model_name_of(model), llm_type if isinstance(llm_type, str) else None
    ).needs_mark


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        return name if isinstance(name, str) else ""
    name = getattr(tool, "name", "")
    return name if isinstance(name, str) else ""


class PromptCacheMiddleware(AgentMiddleware):
    """Keep an agent's prompt prefix stable and marked for the provider's prompt cache.

    Args:
        provider: ``"auto"`` marks requests for models whose provider needs a mark
            (Anthropic, found from the model's name and type); ``"anthropic"`` marks
            every request; ``"none"`` never marks (stable order and the watch only).
        ttl: the cache lifetime asked of Anthropic, ``"5m"`` or ``"1h"``.
        min_messages_to_cache: mark only requests with at least this many messages.
        sort_tools: hand the tools over sorted by name (a stable prefix).
    """

    def __init__(
        self,
        provider: Provider = "auto",
        *,
        ttl: Literal["5m", "1h"] = "5m",
        min_messages_to_cache: int = 0,
        sort_tools: bool = True,
    ) -> None:
        super().__init__()
        if provider not in _PROVIDERS:
            raise ValueError(f"provider must be one of {_PROVIDERS}, got {provider!r}")
        if ttl not in _TTLS:
            raise ValueError(f"ttl must be one of {_TTLS}, got {ttl!r}")
        if (
            isinstance(min_messages_to_cache, bool)
            or not isinstance(min_messages_to_cache, int)
            or min_messages_to_cache < 0
        ):
            raise ValueError(
                f"min_messages_to_cache must be an int >= 0, got {min_messages_to_cache!r}"
            )
        self.provider = provider
        self.ttl = ttl
        self.min_messages_to_cache = min_messages_to_cache
        self.sort_tools = bool(sort_tools)
        self.watch = PrefixWatch()
        self._described: tuple[tuple[Any, ...], str] | None = None

    def stats(self) -> dict[str, Any]:
        """Calls seen, how often the stable prefix changed, and its stable share."""
        return self.watch.stats()

    def prepare(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        """The request with tools in a stable order and the cache mark where needed."""
        changes: dict[str, Any] = {}
        tools = list(request.tools or ())
        if self.sort_tools and len(tools) > 1:
            ordered = sorted(tools, key=_tool_name)
            if ordered != tools:
                changes["tools"] = tools = ordered
        self.watch.observe(model_name_of(request.model), self._stable_part(request, tools))
        count = len(request.messages) + (1 if request.system_message is not None else 0)
        if self._marks(request.model) and count >= self.min_messages_to_cache:
            mark = {"type": "ephemeral", "ttl": self.ttl}
            changes["model_settings"] = {**request.model_settings, "cache_control": mark}
        return request.override(**changes) if changes else request

    def _marks(self, model: Any) -> bool:
        if self.provider == "none":
            return False
        return self.provider == "anthropic" or needs_cache_mark(model)

    def _stable_part(self, request: ModelRequest[Any], tools: list[Any]) -> str:
        system = message_text(request.system_message) if request.system_message else ""
        return system + "\x00" + self._tool_specs(tools)

    def _tool_specs(self, tools: list[Any]) -> str:
        # An agent hands the same tool objects to every model call: describing them
        # (~50 us a tool) is done once per tool list, not on every call.
        last = self._described
        if (
            last is not None
            and len(last[0]) == len(tools)
            and all(a is b for a, b in zip(last[0], tools, strict=True))
        ):
            return last[1]
        specs = []
        for tool in tools:
            try:
                specs.append(convert_to_openai_tool(tool))
            except Exception:  # a tool LangChain cannot describe: its name stands for it
                specs.append({"name": _tool_name(tool)})
        described = json.dumps(specs, sort_keys=True, default=str)
        self._described = (tuple(tools), described)  # one assignment: thread-safe
        return described

    def wrap_model_call(self, request: ModelRequest[Any], handler: CallNext) -> ModelResult:
        return handler(self.prepare(request))

    async def awrap_model_call(self, request: ModelRequest[Any], handler: ACallNext) -> ModelResult:
        return await handler(self.prepare(request))


__all__ = ["PromptCacheMiddleware", "needs_cache_mark"]
