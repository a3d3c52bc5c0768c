"""Token counts without a provider: a model family's real tokenizer when one is installed
(the ``[tokenizers]`` extra), else an offline estimate.

Example:
    >>> from costopt_core.tokens import count_tokens, estimate_tokens
    >>> estimate_tokens("Hello, world!")
    4
    >>> tokens, counter = count_tokens("Hello, world!", "some-local-model")
    >>> tokens, counter  # no tokenizer is known for this family: the estimate
    (4, 'approximate')

The estimate (:func:`estimate_tokens`): CJK ~1 token per character, other scripts ~4
characters per token, which is close to cl100k/o200k on prose. It is what the routers'
classifier and the budget quotes use: cheap enough for every call.

The real counts (:func:`count_tokens`) are only needed when a provider reports no usage
(a stream without usage, a proxy that strips it), so the tokenizer is loaded at the first
such call and kept for the process. OpenAI's model families map to their public BPE
encodings (o200k_base, cl100k_base), which the ``bpe-openai`` package bundles in its
wheel: no download at first use (plain ``tiktoken`` fetches its files from the internet,
which an offline deployment cannot). Other families (Claude, Gemini, DeepSeek, ...) have
no published offline tokenizer here and get the estimate; either way the record is marked
estimated by the accountant.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import warnings
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

#: The counter name :func:`count_tokens` reports when no tokenizer was used.
APPROXIMATE = "approximate"

#: OpenAI chat formats add ~3 tokens per message and 3 that prime the reply (OpenAI's
#: own counting recipe); a completion prompt has neither.
_PER_MESSAGE_TOKENS = 3
_REPLY_PRIMING_TOKENS = 3

# Model-name prefixes (lower case, provider prefix such as "openai/" removed) and their
# encodings. Longest first: "gpt-4o" must win over "gpt-4".
_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure's deployment spelling
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)

TokenCounter = Callable[[str], int]

_lock = threading.Lock()
_counters: dict[str, TokenCounter | None] = {}  # encoding name -> counter (None: absent)
_TOKENIZERS_MEMORY = 1024
_tokenizers: dict[str | None, tuple[str, TokenCounter] | None] = {}  # model -> tokenizer_for


def estimate_tokens(text: str) -> int:
    """Approximate token count of ``text`` (at least 1 for non-empty text).

    Example:
        >>> estimate_tokens("Hello, world!")  # 13 characters, ~4 per token
        4
        >>> estimate_tokens("你好世界")  # one per CJK character
        4
        >>> estimate_tokens("")
        0
    """
    if not text:
        return 0
    if text.isascii():  # O(1) in CPython (a flag of the string): no CJK to look for
        return (len(text) + 3) // 4
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return max(1, cjk + (other + 3) // 4)


# ASCII digits, punctuation and symbols: BPE tokenizers split JSON, ids and numbers far
# more finely than prose (a UUID-heavy prompt runs ~2x the prose estimate). Counted on
# the UTF-8 bytes with bytes.translate (a C loop), ~20x faster than a regex on long text.
_MARK_BYTES = bytes(c for c in range(128) if not chr(c).isspace() and not chr(c).isalnum())
_DIGIT_BYTES = b"0123456789"
_UPPER_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # a capital mid-word starts a token (ids, base64)
_SPACE_BYTES = b" \t\n\r\x0b\x0c"
_HIGH_BYTES = bytes(range(128, 256))  # the bytes of every non-ASCII character
# Every byte but the lead byte of a four-byte character (emoji, rare CJK: often a
# token per byte): deleting them leaves one byte per such character.
_NOT_FOUR_BYTE_LEADS = bytes(c for c in range(256) if not 0xF0 <= c < 0xF8)
# Letters and digits per delimiter (space or mark) above which a text is no prose
# (random ids, hashes, base64): its lower-case letters count 1.5 characters a token
# instead of 4.
_PROSE_RUN = 10

#: What a budget reserves for one image in a prompt: above what OpenAI (a 2048x768
#: image in high detail: 1,105 tokens) and Anthropic (~1,600 for the largest it keeps)
#: bill for one image, whatever its size.
IMAGE_TOKENS_BOUND = 1600


def bound_tokens(text: str) -> int:
    """At least as many tokens as a model's tokenizer makes of ``text``: what a budget
    reserves for it, where :func:`estimate_tokens` (the prose rule) falls short on
    JSON, ids, numbers and non-Latin scripts (Thai ran 1.8x it, a JSON-with-UUIDs
    prompt 2.1x, in an audit with o200k; cl100k makes ~1.3 tokens of a Devanagari
    character). Checked against o200k and cl100k in the tests on prose, code, JSON with
    ids, numbers, base64, emoji and non-Latin scripts; adversarial sequences (random
    letters in short runs, stacked combining marks, control or full-width characters)
    can still run up to 2x past it.

    Example:
        >>> bound_tokens("hello"), bound_tokens("id 7f3a-91c2")  # digits and marks: 1 each
        (2, 8)
        >>> prose = "the cat sat on the mat " * 20
        >>> estimate_tokens(prose) <= bound_tokens(prose) < len(prose) // 3
        True
    """
    if not text:
        return 0
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate (from JSON) is 3 bytes
    low = raw if text.isascii() else raw.translate(None, _HIGH_BYTES)
    marks = len(low) - len(low.translate(None, _MARK_BYTES))  # punctuation, controls
    digits = len(low) - len(low.translate(None, _DIGIT_BYTES))
    upper = len(low) - len(low.translate(None, _UPPER_BYTES))
    spaces = len(low) - len(low.translate(None, _SPACE_BYTES))
    lower = len(low) - marks - digits - upper - spaces
    dense = marks + digits + upper  # a token each at most
    if lower + upper + digits > _PROSE_RUN * (marks + spaces + 1):
        tokens = dense + (2 * lower + 2) // 3 + (spaces + 3) // 4
    else:
        tokens = dense + (lower + spaces + 3) // 4
    if len(low) == len(raw):
        return tokens
    # Other scripts: half a token per UTF-8 byte (1.5 per CJK, Thai or Devanagari
    # character, above what o200k and the denser cl100k make of them); a four-byte
    # character (emoji, rare CJK) up to one per byte.
    four = len(raw.translate(None, _NOT_FOUR_BYTE_LEADS))
    wide = len(raw) - len(low) - 4 * four
    return tokens + 4 * four + (wide + 1) // 2


# Message texts already quoted: an agent sends its whole history again at every turn
# (the same message objects: a str caches its hash), so each message is counted once,
# not once per turn; a chat's system prompt likewise. Texts up to _QUOTED_TEXT_MAX
# characters, _QUOTED_MEMORY of them (2 M characters held at most), emptied when full.
_QUOTED_TEXT_MAX = 2048
_QUOTED_MEMORY = 1024
_quoted: dict[str, int] = {}


def quote_prompt_tokens(texts: Sequence[str], *, chat: bool = True, images: int = 0) -> int:
    """What a budget reserves for a prompt given as its messages' texts: each text's
    :func:`bound_tokens`, the chat format's tokens (``chat``) and ``images`` at
    ``IMAGE_TOKENS_BOUND`` each.

    Example:
        >>> quote_prompt_tokens(["Be brief.", "hi"])  # 4 + 1 + 2*3 + 3
        14
        >>> quote_prompt_tokens(["What is in it?"], chat=False, images=1)
        1605
    """
    tokens = IMAGE_TOKENS_BOUND * images
    quoted = _quoted
    for text in texts:  # a loop, not sum() over a generator: once per budgeted call
        bound = quoted.get(text)
        tokens += _remember(text) if bound is None else bound
    if chat and texts:
        tokens += _PER_MESSAGE_TOKENS * len(texts) + _REPLY_PRIMING_TOKENS
    return tokens


def quote_message_tokens(text: str) -> int:
    """:func:`quote_prompt_tokens` of a chat prompt of one text message, the usual call
    (no list to build: this runs before every budgeted call).

    Example:
        >>> quote_message_tokens("hi") == quote_prompt_tokens(["hi"])
        True
    """
    bound = _quoted.get(text)
    return (
        (_remember(text) if bound is None else bound) + _PER_MESSAGE_TOKENS + _REPLY_PRIMING_TOKENS
    )


def _remember(text: str) -> int:
    # A text not quoted yet: its bound, kept for the next time if the text is short.
    bound = bound_tokens(text)
    if len(text) <= _QUOTED_TEXT_MAX:
        if len(_quoted) >= _QUOTED_MEMORY:
            _quoted.clear()  # one C call, safe against other threads' writes
        _quoted[text] = bound
    return bound


# Tool schemas by identity: a model bound to tools hands every call the same list, and
# its JSON is often kilobytes (serialising it for each budgeted agent call cost more than
# the rest of the budget check). The value keeps the object alive, so its id is not
# reused while cached.
_SCHEMA_TOKENS_MEMORY = 64
_schema_tokens: dict[int, tuple[object, int]] = {}


def estimate_schema_tokens(schema: object) -> int:
    """:func:`bound_tokens` of ``schema`` written as JSON (e.g. a call's bound tools, which
    budgets reserve for), worked out once per schema object.

    Example:
        >>> tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
        >>> estimate_schema_tokens(tools) == bound_tokens(json.dumps(tools, default=str))
        True
    """
    held = _schema_tokens.get(id(schema))
    if held is not None and held[0] is schema:
        return held[1]
    tokens = bound_tokens(json.dumps(schema, default=str))
    if len(_schema_tokens) >= _SCHEMA_TOKENS_MEMORY:
        _schema_tokens.clear()  # a few schemas per process: a rare reset, not an LRU
    _schema_tokens[id(schema)] = (schema, tokens)
    return tokens


def encoding_for(model: str | None) -> str | None:
    """The BPE encoding of ``model``'s family, or ``None`` when it has no public one.

    Example:
        >>> encoding_for("gpt-4o-mini"), encoding_for("openai/gpt-4"), encoding_for("claude-3")
        ('o200k_base', 'cl100k_base', None)
    """
    if not model:
        return None
    name = model.rsplit("/", 1)[-1].strip().lower()
    for prefix, encoding in _ENCODINGS:
        if name.startswith(prefix):
            return encoding
    return None


def _load(encoding: str) -> TokenCounter | None:
    try:
        with warnings.catch_warnings():
            # bpe-openai 0.1.4 reads its bundled files (at import and per encoding) with
            # a deprecated importlib call; the warning is its, not the user's.
            warnings.simplefilter("ignore", DeprecationWarning)
            import bpe_openai  # the [tokenizers] extra: encodings bundled in the wheel

            encode = bpe_openai.get_encoding(encoding).encode_ordinary
    except ImportError:
        return None
    except Exception:  # a broken install must not break the user's call
        logger.exception("loading the %s tokenizer failed; token counts are estimated", encoding)
        return None
    # encode_ordinary: special-token text in a prompt ("<|endoftext|>") is plain text.
    return lambda text: len(encode(text))


def tokenizer_for(model: str | None) -> tuple[str, TokenCounter] | None:
    """``(encoding name, counter)`` for ``model``'s family if its tokenizer is installed.

    The first call per encoding loads it (a fraction of a second), once per process.

    Example:
        >>> tokenizer_for("some-local-model") is None
        True
    """
    # Resolved once per model name: every call without provider usage asks again.
    try:
        return _tokenizers[model]
    except KeyError:
        pass
    encoding = encoding_for(model)
    found: tuple[str, TokenCounter] | None = None
    if encoding is not None:
        with _lock:  # one load per encoding, even when several threads need it at once
            if encoding not in _counters:
                _counters[encoding] = _load(encoding)
            counter = _counters[encoding]
        found = None if counter is None else (encoding, counter)
    if len(_tokenizers) >= _TOKENIZERS_MEMORY:
        _tokenizers.clear()  # a process names few models: a rare reset, not an LRU
    _tokenizers[model] = found
    return found


def count_tokens(text: str, model: str | None = None) -> tuple[int, str]:
    """Tokens of ``text`` on ``model``'s tokenizer, and which counter gave them (an
    encoding name, or ``APPROXIMATE`` for :func:`estimate_tokens`).

    Example:
        >>> count_tokens("你好世界", None)
        (4, 'approximate')
    """
    found = tokenizer_for(model)
    if found is None:
        return estimate_tokens(text), APPROXIMATE
    encoding, counter = found
    try:
        return counter(text), encoding
    except Exception:
        logger.exception("the %s tokenizer failed; this count is estimated", encoding)
        return estimate_tokens(text), APPROXIMATE


def count_prompt_tokens(
    texts: Sequence[str], model: str | None = None, *, chat: bool = True
) -> tuple[int, str]:
    """Tokens of a prompt given as its messages' texts (``chat``: with the chat format's
    per-message and reply-priming tokens), and the counter used.

    Example:
        >>> count_prompt_tokens(["Be brief.", "Hello, world!"], None)  # 3 + 4 + 2*3 + 3
        (16, 'approximate')
        >>> count_prompt_tokens(["Hello, world!"], None, chat=False)
        (4, 'approximate')
    """
    tokens = 0
    counter = APPROXIMATE
    for text in texts:
        counted, counter = count_tokens(text, model)
        tokens += counted
    if chat and texts:
        tokens += _PER_MESSAGE_TOKENS * len(texts) + _REPLY_PRIMING_TOKENS
    return tokens, counter


__all__ = [
    "APPROXIMATE",
    "IMAGE_TOKENS_BOUND",
    "bound_tokens",
    "count_prompt_tokens",
    "count_tokens",
    "encoding_for",
    "estimate_schema_tokens",
    "estimate_tokens",
    "quote_message_tokens",
    "quote_prompt_tokens",
    "tokenizer_for",
]
