"""Distillation data: the strong tier's answers on routed traffic, written as a chat
fine-tuning set (JSONL, one ``{"messages": [...]}`` per line, the common format of the
OpenAI fine-tuning API and of most open-source trainers).

Example:
    >>> import json, tempfile, os
    >>> from costopt_core.distillation import DistillationWriter, redact_pii
    >>> path = os.path.join(tempfile.mkdtemp(), "distill.jsonl")
    >>> writer = DistillationWriter(path, tiers=("complex",), redact=redact_pii)
    >>> chat = [{"role": "system", "content": "Be brief."},
    ...         {"role": "user", "content": "Compare A and B; mail me at ann@example.com"}]
    >>> writer.record(chat, "A is faster, B is cheaper.", tier="complex")
    True
    >>> writer.record(chat, "A.", tier="simple")  # not a tier being distilled
    False
    >>> writer.close()
    >>> json.loads(open(path).read())["messages"][1]["content"]
    'Compare A and B; mail me at [EMAIL]'
    >>> writer.stats["written"], writer.stats["other_tier"]
    (1, 1)

Opt-in by construction: nothing is written unless a ``DistillationWriter`` (or a face's
recorder around one) is created with a path. ``redact`` is called on every message's
text and on the answer before anything touches the disk; a redactor that fails drops the
record (it is never written unredacted). ``redact_pii`` is a simple regex redactor for
e-mail addresses, card numbers (Luhn-checked) and phone numbers, offered as an option,
not on by default: regexes miss names, addresses and much else, so check your data.

The faces (``langchain_costopt.distillation.DistillationRecorder``,
``llamaindex_costopt.distillation.DistillationEventHandler``) turn their frameworks'
events into :meth:`DistillationWriter.record` calls; what is kept is decided here:

* only routed answers on one of ``tiers`` (cheapest-first tier names, as the router's);
* never a cache hit (the answer was given to another question);
* only plain text conversations: a conversation with tool calls or tool results is
  skipped (counted under ``"not_text"``, as are images), as is an empty question or
  answer;
* the same conversation and answer only once per writer (a retried or re-asked call).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from typing import IO, Any

from costopt_core.arguments import refuse_unknown_arguments

logger = logging.getLogger(__name__)

Redactor = Callable[[str], str]
#: The tiers recorded unless told otherwise: the seed's strongest.
DEFAULT_TIERS = ("complex",)

#: Roles a fine-tuning conversation may hold (OpenAI's chat format, text only).
TEXT_ROLES = frozenset({"system", "user", "assistant"})
#: ``stats`` keys: what was written and why the rest was not.
STAT_KEYS = (
    "written",
    "other_tier",
    "cache_hit",
    "not_text",
    "empty",
    "duplicate",
    "redact_failed",
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes (card numbers as people type them).
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# An optional +country code, then 7-15 digits with spaces, dots, dashes or (area) groups.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){6,14}(?!\d)"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if _luhn_ok(digits) else match.group()


def redact_pii(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers with placeholders.

    Example:
        >>> redact_pii("Call +1 (415) 555-0134 or write to bob.lee@mail.example.org")
        'Call [PHONE] or write to [EMAIL]'
        >>> redact_pii("card 4111 1111 1111 1111, order 2024-05-03, 3 items")
        'card [CARD], order 2024-05-03, 3 items'
        >>> redact_pii("请拨打 138-0013-8000")
        '请拨打 [PHONE]'

    Card numbers must pass the Luhn check (an order number of 16 digits is left alone
    unless it happens to pass it). A phone number has 7-15 digits with separators or a
    ``+``, or 10-15 plain digits; ISO dates, decimals and shorter plain numbers are kept.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def _phone(match: re.Match[str]) -> str:
    value = match.group()
    # Kept: an ISO date (2024-05-03), a decimal (3.14159265) and a plain run of under 10
    # digits (an amount in a maths answer is far more common than a bare local number).
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d+\.\d+", value) or (value.isdigit() and len(value) < 10):
        return value
    return "[PHONE]"


def _check_tiers(tiers: Any) -> tuple[str, ...]:
    if isinstance(tiers, str):
        tiers = (tiers,)
    try:
        out = tuple(tiers)
    except TypeError:
        raise TypeError(f"tiers must be tier names, got {tiers!r}") from None
    if not out or not all(isinstance(t, str) and t for t in out):
        raise ValueError(f"tiers must be one or more non-empty tier names, got {tiers!r}")
    return out


class DistillationWriter:
    """Append routed strong-tier answers to ``path`` as chat fine-tuning JSONL.

    Args:
        path: the JSONL file (appended to; its folder must exist).
        tiers: the tiers whose answers are kept (default ``("complex",)``).
        redact: ``str -> str`` applied to every text before writing (e.g.
            :func:`redact_pii`); ``None`` writes the text as it is.
        dedupe: write each (conversation, answer) once per writer.

    Thread-safe; each record is one ``write`` of one line to a file opened for append.
    ``stats`` counts written records and the skipped ones by reason (``STAT_KEYS``).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        tiers: Iterable[str] = DEFAULT_TIERS,
        redact: Redactor | None = None,
        dedupe: bool = True,
    ) -> None:
        if not isinstance(path, str | PathLike):
            raise TypeError(f"path must be a file path, got {path!r}")
        folder = os.path.dirname(os.fspath(path)) or "."
        if not os.path.isdir(folder):
            raise ValueError(f"path's folder does not exist: {folder!r}")
        if redact is not None and not callable(redact):
            raise TypeError(f"redact must be a callable str -> str or None, got {redact!r}")
        self.path = os.fspath(path)
        self.tiers = _check_tiers(tiers)
        self.redact = redact
        self.dedupe = bool(dedupe)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def wants(self, tier: str | None) -> bool:
        """Whether an answer from ``tier`` is kept (faces skip the rest cheaply)."""
        return tier is not None and tier in self.tiers

    def record(
        self,
        messages: Sequence[Mapping[str, Any]],
        answer: str,
        *,
        tier: str | None,
        cached: bool = False,
    ) -> bool:
        """Write one example: ``messages`` (``{"role", "content"}`` dicts, the prompt the
        model saw) followed by ``answer`` as the assistant turn. True when written."""
        if not self.wants(tier):
            return self._skip("other_tier")
        if cached:
            return self._skip("cache_hit")
        turns = [(m.get("role"), m.get("content")) for m in messages]
        if any(role not in TEXT_ROLES or not isinstance(text, str) for role, text in turns):
            return self._skip("not_text")
        if not answer or not any(role == "user" and text.strip() for role, text in turns):
            return self._skip("empty")
        try:
            texts = [self._redacted(text) for _, text in turns]
            reply = self._redacted(answer)
        except Exception:  # the redactor failed: never write what it did not clean
            logger.exception("distillation redactor failed; record dropped")
            return self._skip("redact_failed")
        example = {
            "messages": [
                *(
                    {"role": role, "content": text}
                    for (role, _), text in zip(turns, texts, strict=True)
                ),
                {"role": "assistant", "content": reply},
            ]
        }
        line = json.dumps(example, ensure_ascii=False) + "\n"
        key = hashlib.blake2b(line.encode("utf-8"), digest_size=16).digest()
        with self._lock:
            if self.dedupe and key in self._seen:
                self.stats["duplicate"] += 1
                return False
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(line)
            self._file.flush()
            self._seen.add(key)
            self.stats["written"] += 1
        return True

    def _redacted(self, text: str) -> str:
        if self.redact is None:
            return text
        out = self.redact(text)
        if not isinstance(out, str):
            raise TypeError(f"redact must return a str, got {type(out).__name__}")
        return out

    def _skip(self, reason: str) -> bool:
        with self._lock:
            self.stats[reason] += 1
        return False

    def close(self) -> None:
        """Close the file (a later record opens it again, appending)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> DistillationWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        written = self.stats["written"]
        return f"DistillationWriter({self.path!r}, tiers={self.tiers!r}, written={written})"


#: Where a face's recorder writes: a JSONL file path, or a writer to share.
WriterTarget = str | PathLike[str] | DistillationWriter


def writer_for(
    path: WriterTarget,
    *,
    tiers: Iterable[str],
    redact: Redactor | None,
) -> DistillationWriter:
    """The faces' arguments: ``path`` (a JSONL file path, or a ``DistillationWriter`` to
    share, e.g. between the two faces), ``tiers`` (tier names whose answers are kept)
    and ``redact`` (``str -> str`` run on every text before writing, e.g.
    :func:`redact_pii`; off by default)."""
    if isinstance(path, DistillationWriter):
        return path
    return DistillationWriter(path, tiers=tiers, redact=redact)


class RecorderFace:
    """What both faces' recorders share: their arguments (see :func:`writer_for`), the
    ``writer`` they feed, its ``stats``, and ``close()``. A face mixes it in before its
    framework's handler class and sets up its own state in :meth:`_start`."""

    def __init__(
        self,
        path: WriterTarget,
        tiers: Iterable[str] = DEFAULT_TIERS,
        redact: Redactor | None = None,
        **unknown: Any,
    ) -> None:
        # Named after the face the user built, not this mixin, when a keyword is misspelt.
        refuse_unknown_arguments(unknown, ("path", "tiers", "redact"), type(self).__name__)
        super().__init__()
        self._writer = writer_for(path, tiers=tiers, redact=redact)
        self._start()

    def _start(self) -> None:
        """The face's own state, set up once the writer is in place."""

    @property
    def writer(self) -> DistillationWriter:
        return self._writer

    @property
    def stats(self) -> dict[str, int]:
        """``written`` and the skipped records by reason (``STAT_KEYS``)."""
        return self._writer.stats

    def close(self) -> None:
        """Close the file (a later answer opens it again, appending)."""
        self._writer.close()


__all__ = [
    "DEFAULT_TIERS",
    "STAT_KEYS",
    "TEXT_ROLES",
    "DistillationWriter",
    "RecorderFace",
    "Redactor",
    "WriterTarget",
    "redact_pii",
    "writer_for",
]
