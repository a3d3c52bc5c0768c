"""A deterministic, offline text embedding: signed feature hashing of words and
character n-grams, L2-normalised. No model download, same vector in every process.

Example:
    >>> from costopt_core.hashing import HashingEmbedder
    >>> embed = HashingEmbedder(dim=256)
    >>> a, b, c = embed.embed(["How many apples?", "how many apples", "Translate to French"])
    >>> round(float(a @ a), 6)
    1.0
    >>> bool(a @ b > a @ c)
    True

It captures surface similarity (shared words, stems, character runs), which is what a
nearest-neighbour router or a cache needs for paraphrases that share vocabulary; it does
not know synonyms. Words and n-grams are taken from the lower-cased text; CJK text has no
spaces, so its character n-grams carry the signal.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Hashed bag of words plus character n-grams.

    Args:
        dim: vector length (more = fewer collisions).
        ngram_range: character n-gram sizes, inclusive (n-grams of each word padded
            with spaces, so prefixes and suffixes count).
        word_weight: weight of a whole-word feature relative to one n-gram.
    """

    def __init__(
        self,
        dim: int = 512,
        ngram_range: tuple[int, int] = (3, 5),
        word_weight: float = 2.0,
    ) -> None:
        if not isinstance(dim, int) or dim < 8:
            raise ValueError(f"dim must be an int >= 8, got {dim!r}")
        lo, hi = ngram_range
        if not (isinstance(lo, int) and isinstance(hi, int)) or not 1 <= lo <= hi:
            raise ValueError(
                f"ngram_range must be (min, max) ints with 1 <= min <= max, got {ngram_range!r}"
            )
        if not word_weight >= 0:
            raise ValueError(f"word_weight must be >= 0, got {word_weight!r}")
        self.dim = dim
        self.ngram_range = (lo, hi)
        self.word_weight = float(word_weight)

    def _features(self, text: str) -> Iterable[tuple[str, float]]:
        lo, hi = self.ngram_range
        for word in _WORD.findall(text.lower()):
            if self.word_weight:
                yield "w:" + word, self.word_weight
            padded = f" {word} "
            for n in range(lo, hi + 1):
                for i in range(max(1, len(padded) - n + 1)):
                    yield padded[i : i + n], 1.0

    def embed_one(self, text: str, *, never_zero: bool = False) -> np.ndarray:
        """One text's unit vector.

        A text with no word characters (``"???"``) has no features: all zeros, or with
        ``never_zero`` one hashed feature of the whole text, so that it still matches
        itself and nothing else (what a cache needs: a zero vector has no direction).

        Example:
            >>> embed = HashingEmbedder(dim=16)
            >>> float(abs(embed.embed_one("???")).sum())
            0.0
            >>> float(abs(embed.embed_one("???", never_zero=True)).sum())
            1.0
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        vec = np.zeros(self.dim, dtype=np.float64)
        for feature, weight in self._features(text):
            h = zlib.crc32(feature.encode("utf-8"))
            # The low bit picks a sign so that collisions cancel out on average.
            vec[(h >> 1) % self.dim] += weight if h & 1 else -weight
        norm = float(np.linalg.norm(vec))
        if norm > 0:
            vec /= norm
        elif never_zero:
            vec[zlib.crc32(text.encode("utf-8")) % self.dim] = 1.0
        return vec.astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` as an ``(n, dim)`` float32 array."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts; use embed_one for one text")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)

    def config(self) -> dict[str, Any]:
        """Settings that rebuild an identical embedder via ``HashingEmbedder(**config)``.

        Example:
            >>> HashingEmbedder(dim=64).config()
            {'dim': 64, 'ngram_range': [3, 5], 'word_weight': 2.0}
            >>> HashingEmbedder.from_config(HashingEmbedder(dim=64).config())
            HashingEmbedder(dim=64, ngram_range=(3, 5), word_weight=2.0)
        """
        return {
            "dim": self.dim,
            "ngram_range": list(self.ngram_range),
            "word_weight": self.word_weight,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HashingEmbedder:
        return cls(
            dim=int(config["dim"]),
            ngram_range=tuple(config["ngram_range"]),  # type: ignore[arg-type]
            word_weight=float(config["word_weight"]),
        )

    def __repr__(self) -> str:
        return (
            f"HashingEmbedder(dim={self.dim}, ngram_range={self.ngram_range}, "
            f"word_weight={self.word_weight})"
        )


__all__ = ["HashingEmbedder"]
