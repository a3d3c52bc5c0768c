"""Provider prompt-caching rules and the prefix watch."""

from __future__ import annotations

import threading

import pytest

from costopt_core.prompt_prefix import (
    ANTHROPIC,
    OPENAI,
    PrefixWatch,
    caching_rule,
    settings_for,
    volatile_parts,
)


def test_caching_rules_by_model_name_and_type() -> None:
    assert caching_rule("claude-sonnet-4-5") == ANTHROPIC
    assert caching_rule("claude-3-5-haiku").min_tokens == 2048
    assert caching_rule("my-deployment", "anthropic-chat").needs_mark
    assert caching_rule("gpt-4o-mini") == OPENAI and not OPENAI.needs_mark
    assert caching_rule("o3-mini").provider == "openai"
    assert caching_rule("gemini-2.5-flash").provider == "google"
    assert caching_rule("deepseek-v3").provider == "unknown"


def test_the_mark_is_kept_only_for_models_that_take_it() -> None:
    settings = {"cache_control": {"type": "ephemeral"}, "temperature": 0.2}
    assert settings_for("claude-sonnet-4-5", None, settings) is settings
    assert settings_for("gpt-4o", "openai-chat", settings) == {"temperature": 0.2}
    assert settings_for("gpt-4o", None, {"temperature": 0}) == {"temperature": 0}


def test_volatile_parts_are_found() -> None:
    text = "Request 3f2a9c1e-0b7d-4c55-9a1e-2b3c4d5e6f70 at 2026-12-07T09:14:03Z, 09:15 UTC"
    found = volatile_parts(text)
    assert "3f2a9c1e-0b7d-4c55-9a1e-2b3c4d5e6f70" in found
    assert "2026-12-07T09:14:03Z" in found and "09:15" in found
    assert volatile_parts("You are a helpful assistant for ACME.") == []


def test_the_watch_counts_changes_per_model_and_says_where() -> None:
    watch = PrefixWatch()
    assert watch.observe("a", "stable system prompt") is None
    assert watch.observe("b", "another model's prompt") is None
    assert watch.observe("a", "stable system prompt") is None
    change = watch.observe("a", "stable system prompt, id 1796612473")
    assert change is not None and change.offset == len("stable system prompt")
    assert change.volatile == ["1796612473"] and "1796612473" in change.describe()
    assert watch.stats() == {"calls": 4, "prefix_changes": 1, "stable_share": 0.5}


def test_the_watch_is_bounded_and_thread_safe() -> None:
    watch = PrefixWatch(max_keys=8)

    def hammer(worker: int) -> None:
        for i in range(500):
            watch.observe(f"model-{(worker + i) % 16}", "prompt")

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert watch.stats()["calls"] == 2000
    assert watch.stats()["prefix_changes"] == 0
    with pytest.raises(ValueError, match="max_keys"):
        PrefixWatch(max_keys=0)
