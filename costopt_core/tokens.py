"""Offline token estimates (no tokenizer download): CJK ~1 token per character,
other scripts ~4 characters per token, which is close to cl100k/o200k on prose."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


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
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return max(1, cjk + (other + 3) // 4)
