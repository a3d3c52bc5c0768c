"""Deterministic behaviour shared by the simulated models of both faces.

Example:
    >>> from costopt_core.simulation import fill_schema, simulated_answer
    >>> fill_schema({"properties": {"n": {"type": "integer"}}}, "add 3 and 4")
    {'n': 3}
    >>> simulated_answer("gpt-4o-mini", "What is 2 + 2?", words=3).startswith("gpt-4o-mini on")
    True

``langchain_costopt.simulated.SimulatedChatModel`` and
``llamaindex_costopt.simulated.SimulatedLLM`` stand in for provider models in offline
examples and tests. They answer the same way from the same question, so a tier behaves
alike in both frameworks. None of this is a language model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

from costopt_core.tokens import estimate_tokens

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"|「([^」]+)」|“([^”]+)”")
_CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][\w-]*(?:[ ,]+[A-Z][\w-]*)*)")
_WORD = re.compile(r"\w+")
# Words that say nothing about which tool a question is about.
_NAME_STOPWORDS = frozenset({"get", "set", "my", "tool", "the", "a", "of", "to", "fn", "func"})
_FILLER = ("this", "depends", "on", "context", "and", "the", "details", "given",
           "so", "here", "is", "a", "concise", "answer", "with", "reasons")  # fmt: skip


def simulated_answer(model_name: str, question: str, words: int = 24) -> str:
    """A deterministic answer: the same model and question always give the same text."""
    seed = zlib.crc32(f"{model_name}|{question}".encode())
    head = _WORD.findall(question)[:8] or ["your", "question"]
    body = []
    for _ in range(words):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF  # deterministic LCG
        body.append(_FILLER[(seed >> 16) % len(_FILLER)])
    return f"{model_name} on '{' '.join(head)}': " + " ".join(body) + "."


def truncate_to_tokens(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` estimated tokens, as a
    provider's ``max_tokens`` cuts an answer (so a budget's reserved maximum holds).

    Example:
        >>> truncate_to_tokens("one two three four five six", 3)
        'one two'
    """
    if estimate_tokens(text) <= limit:
        return text
    words = text.split()
    while words and estimate_tokens(" ".join(words)) > limit:
        words.pop()
    return " ".join(words)


def choose_tool(names: Sequence[str], question: str, choice: Any) -> str | None:
    """Which tool a provider would call: the forced one, else one the question names;
    ``None`` when no tool is called."""
    if not names:
        return None
    mentioned = [n for n in names if mentions(question, n)]
    if choice in (None, "auto"):
        return mentioned[0] if mentioned else None
    if choice == "none" or choice is False:
        return None
    if isinstance(choice, str) and choice in names:
        return choice
    if isinstance(choice, dict):
        return choice.get("function", {}).get("name") or choice.get("name") or names[0]
    return mentioned[0] if mentioned else names[0]  # "any" / "required" / True


def mentions(question: str, tool_name: str) -> bool:
    """The question names the tool, or a meaningful word of its name."""
    lowered = question.lower()
    if tool_name.lower() in lowered:
        return True
    parts = re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", tool_name)
    words = {p.lower() for p in parts if len(p) > 2 and p.lower() not in _NAME_STOPWORDS}
    return bool(words & {w.lower() for w in _WORD.findall(question)})


class _Filler:
    """Hands out values found in the question, in order, for a schema's arguments."""

    def __init__(self, question: str) -> None:
        self.numbers = iter(_NUMBER.findall(question))
        quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(question)]
        rest = _QUOTED.sub(" ", question)
        names = [m.group(1).strip(" ,") for m in _CAPITALISED.finditer(rest)]
        self.texts = iter([*quoted, *names])
        self.words = _WORD.findall(question) or ["value"]

    def number(self, default: str = "1") -> str:
        return next(self.numbers, default)

    def text(self, name: str) -> str:
        found = next(self.texts, None)
        return found if found else f"{name}: {' '.join(self.words[:6])}"


def fill_schema(schema: dict[str, Any], question: str | _Filler) -> dict[str, Any]:
    """Arguments for a JSON schema: numbers from the question in order, quoted text
    and capitalised names for strings, the question's words otherwise."""
    filler = question if isinstance(question, _Filler) else _Filler(question)
    definitions = schema.get("$defs") or schema.get("definitions") or {}
    props: dict[str, Any] = schema.get("properties") or {}
    required = schema.get("required") or list(props)
    args: dict[str, Any] = {}
    for name, spec in props.items():
        if name not in required and "default" in spec:
            continue
        args[name] = _value_for(_deref(spec, definitions), filler, name, definitions)
    return args


def _deref(spec: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = spec.get("$ref")
    if isinstance(ref, str):
        return definitions.get(ref.rsplit("/", 1)[-1], {})
    return spec


def _value_for(
    spec: dict[str, Any], filler: _Filler, name: str, definitions: dict[str, Any]
) -> Any:
    if "enum" in spec:
        return spec["enum"][0]
    if "const" in spec:
        return spec["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in spec:
            options = [_deref(s, definitions) for s in spec[key]]
            usable = [s for s in options if s.get("type") != "null"] or options
            return _value_for(usable[0], filler, name, definitions)
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return int(float(filler.number()))
    if kind == "number":
        return float(filler.number())
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        item = _deref(spec.get("items") or {"type": "string"}, definitions)
        return [_value_for(item, filler, name, definitions)]
    if kind == "object" or "properties" in spec:
        return fill_schema({**spec, "$defs": definitions}, filler)
    return filler.text(name)
