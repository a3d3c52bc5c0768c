"""Where a model's deferred calls go: which provider's batch API, with which key.

Example:
    >>> target = resolve_target(detected="openai", api_key="sk-test", model_name="gpt-4o-mini",
    ...                         params={"max_tokens": 64})
    >>> target.api, target.model, dict(target.params)
    (OpenAIBatchAPI(base_url='https://api.openai.com/v1'), 'gpt-4o-mini', {'max_tokens': 64})

Both faces read what a framework model says about itself (its provider, base URL, key,
model name and settings) and hand it here; what was passed explicitly wins, and a key
neither passed nor held by the model is read from the provider's usual environment
variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``), as the providers' SDKs do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from costopt_core.batch.anthropic import AnthropicBatchAPI
from costopt_core.batch.openai import OpenAIBatchAPI
from costopt_core.batch.wire import BatchProvider

#: Provider name -> its batch API class (the names the faces accept as ``provider=``).
PROVIDERS: dict[str, type[OpenAIBatchAPI] | type[AnthropicBatchAPI]] = {
    "openai": OpenAIBatchAPI,
    "anthropic": AnthropicBatchAPI,
}
#: Where each provider's SDK looks for its key when none is given.
KEY_ENV: Mapping[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True)
class BatchTarget:
    """A model's batch API, the model name to send, and the settings sent with each call."""

    api: BatchProvider
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)


def check_provider(provider: str | None) -> None:
    """A ``provider=`` argument: None (the model says), or a provider with a batch API.

    Example:
        >>> check_provider("azure")
        Traceback (most recent call last):
        ...
        ValueError: provider must be one of ['anthropic', 'openai'] or None, got 'azure'
    """
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)} or None, got {provider!r}")


def batch_api(
    provider: str, api_key: str | None = None, base_url: str | None = None
) -> BatchProvider:
    """The batch API of ``provider`` (``"openai"`` or ``"anthropic"``); without
    ``api_key``, the key in the provider's environment variable.

    Example:
        >>> batch_api("openai", "sk-test")
        OpenAIBatchAPI(base_url='https://api.openai.com/v1')
        >>> batch_api("mistral", "k")
        Traceback (most recent call last):
        ...
        ValueError: provider must be one of ['anthropic', 'openai'], got 'mistral'
    """
    cls = PROVIDERS.get(provider)
    if cls is None:
        raise ValueError(f"provider must be one of {sorted(PROVIDERS)}, got {provider!r}")
    key = api_key or os.environ.get(KEY_ENV[provider])
    if not key:
        raise ValueError(
            f"api_key is required: none was given, the model holds none and "
            f"{KEY_ENV[provider]} is not set"
        )
    return cls(key, base_url)


def resolve_target(
    *,
    provider: str | None = None,
    detected: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    model_name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> BatchTarget:
    """The target of a model: ``provider`` (else the one the model ``detected``), the
    base URL and key given (else the provider's defaults), ``model_name`` to send."""
    check_provider(provider)
    name = provider or detected
    if name not in PROVIDERS:
        raise ValueError(
            f"provider must be one of {sorted(PROVIDERS)} (the model says {detected!r}): "
            "pass provider=, base_url= and api_key="
        )
    if not isinstance(model_name, str) or not model_name:
        raise ValueError("model_name is required: the model does not name its model")
    return BatchTarget(batch_api(name, api_key, base_url), model_name, dict(params or {}))


__all__ = [
    "KEY_ENV",
    "PROVIDERS",
    "BatchTarget",
    "batch_api",
    "check_provider",
    "resolve_target",
]
