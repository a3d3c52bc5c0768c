"""Embeddings for learned routers: any model, computed once per text, cached on disk.

Example:
    >>> import tempfile
    >>> from costopt_core.embedding_cache import CachedEmbedder
    >>> calls = []
    >>> def model(texts):
    ...     calls.extend(texts)
    ...     return [[float(len(t)), 1.0] for t in texts]
    >>> folder = tempfile.mkdtemp()
    >>> embed = CachedEmbedder(model, model_id="demo-v1", cache_dir=folder)
    >>> embed(["hi", "hello", "hi"]).shape, calls
    ((3, 2), ['hi', 'hello'])
    >>> fresh = CachedEmbedder(model, model_id="demo-v1", cache_dir=folder)  # a new process
    >>> fresh(["hello"]).tolist(), calls  # read from disk: the model is not called
    ([[5.0, 1.0]], ['hi', 'hello'])

Any framework's model works without importing the framework (duck typing): a LangChain
``Embeddings`` (``embed_documents``), a LlamaIndex ``BaseEmbedding``
(``get_text_embedding_batch``), an object with ``embed(texts)`` or a plain callable
``texts -> vectors``. Prompts are compared with prompts, so both sides of a learned router
go through the same (document) function.

The disk cache is keyed by the text's SHA-256 under the model's identity (``model_id``:
by default the class and its ``model`` / ``model_name``), one SQLite file per model, so a
re-run of an evaluation embeds nothing twice and two models never share vectors. A model
with no identity (a bare callable) is cached in memory only unless a ``model_id`` is given.

:func:`default_embedding` picks the best offline model installed: the neural embedding of
the ``[embeddings]`` extra when present, else the hashing embedder, with a warning that
says so (it is lexical and learns far less from the same labels).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import re
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from costopt_core.hashing import HashingEmbedder

EmbedFn = Callable[[Sequence[str]], np.ndarray]

#: Where a neural offline embedding may live ("module:factory"), best first. The factory
#: returns an embedding model (see the module docs) and raises ImportError when its extra
#: is not installed.
NEURAL_PROVIDERS: tuple[str, ...] = ("costopt_core.local_embedding:LocalEmbedder",)


def default_embedding(*, warn: bool = True, stacklevel: int = 3) -> Any:
    """The best offline embedding installed: a neural one from ``NEURAL_PROVIDERS`` when
    its extra is installed, else a :class:`HashingEmbedder` (with a ``UserWarning`` at
    ``stacklevel``, counted from this function).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     model = default_embedding()
        >>> model_identity(model) is not None
        True
    """
    for spec in NEURAL_PROVIDERS:
        module_name, _, attr = spec.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)()
        except (ImportError, AttributeError):
            continue
    if warn:
        warnings.warn(
            "no neural offline embedding installed: learned routing falls back to the "
            "lexical hashing embedding, which learns far less from the same labels; "
            'install one with pip install "costopt-llm[embeddings]" or pass embeddings=',
            UserWarning,
            stacklevel=stacklevel,
        )
    return HashingEmbedder()


#: Public settings of the common embedding classes (LangChain's OpenAI, Google, Cohere,
#: Voyage, Hugging Face; LlamaIndex's) that change the vectors a model name gives: two
#: configurations of one model never share cached vectors. Settings left at None, empty or
#: at the class's own default are not named, so a model's identity without them is what it
#: always was (and its cached vectors are kept).
OUTPUT_SETTINGS: tuple[str, ...] = (
    "dimensions",
    "dimension",
    "output_dimension",
    "output_dimensionality",
    "truncate_dim",
    "normalize",
    "normalize_embeddings",
    "encode_kwargs",
    "embed_instruction",
    "query_instruction",
    "text_instruction",
    "task_type",
    "input_type",
    "pooling",
    "max_length",
    "truncation",
    "truncate",
    "mode",
)
_PLAIN = (str, int, float, bool)


def _plain_setting(value: Any) -> Any:
    """``value`` as JSON-ready data when it is plain (numbers, text, lists and dicts of
    them; an enum by its value), else None: a client or a secret never enters an
    identity (it is written into router files)."""
    value = getattr(value, "value", value)  # an Enum member
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple):
        items = [_plain_setting(v) for v in value]
        return None if any(i is None for i in items) else items
    if isinstance(value, dict):
        pairs = {str(k): _plain_setting(v) for k, v in value.items()}
        return None if any(v is None for v in pairs.values()) else pairs
    return None


def _class_default(cls: type, name: str) -> Any:
    """The default ``cls`` gives setting ``name`` (a pydantic field, a dataclass field,
    an ``__init__`` argument or a class attribute), or ``_NO_DEFAULT``."""
    field = (getattr(cls, "model_fields", None) or {}).get(name)  # pydantic 2
    if field is None and dataclasses.is_dataclass(cls):
        field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if field is not None:
        default = getattr(field, "default", _NO_DEFAULT)
        factory = getattr(field, "default_factory", None)
        if callable(factory) and not isinstance(default, (*_PLAIN, type(None))):
            try:
                return factory()
            except TypeError:  # a pydantic factory taking the validated data
                return _NO_DEFAULT
        return default
    try:
        argument = inspect.signature(cls.__init__).parameters.get(name)
    except (TypeError, ValueError):
        argument = None
    if argument is not None and argument.default is not inspect.Parameter.empty:
        return argument.default
    attribute = inspect.getattr_static(cls, name, _NO_DEFAULT)
    return _NO_DEFAULT if callable(attribute) or hasattr(attribute, "__get__") else attribute


_NO_DEFAULT = object()


def _model_name(model: Any) -> str | None:
    """The model name ``model`` carries (``model`` / ``model_name`` / ...), if any."""
    for attr in ("model", "model_name", "model_id", "MODEL"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def model_identity(model: Any) -> str | None:
    """A stable name for ``model``'s vectors, or None when it has none (a bare callable):
    the class, the model name and the settings of ``OUTPUT_SETTINGS`` it sets to other
    than its class's default.

    Example:
        >>> model_identity(HashingEmbedder(dim=64))
        'hashing:{"dim": 64, "ngram_range": [3, 5], "word_weight": 2.0}'
        >>> class Remote:
        ...     def __init__(self, dimensions=None):
        ...         self.model, self.dimensions = "text-embedding-3-small", dimensions
        >>> model_identity(Remote()).endswith("Remote:text-embedding-3-small")
        True
        >>> model_identity(Remote(256)).endswith('text-embedding-3-small{"dimensions": 256}')
        True
        >>> model_identity(Remote(None)) == model_identity(Remote())  # the default: unnamed
        True
    """
    import json

    if isinstance(model, HashingEmbedder):
        return "hashing:" + json.dumps(model.config(), sort_keys=True)
    value = _model_name(model)
    if value is None:
        return None
    cls = type(model)
    settings = {}
    for name in OUTPUT_SETTINGS:
        setting = _plain_setting(getattr(model, name, None))
        if setting in (None, "", [], {}):
            continue
        default = _class_default(cls, name)
        # A default the user did not choose names nothing: an identity is the cache file
        # and the check of a saved router, both kept from before settings were named.
        if default is not _NO_DEFAULT and _plain_setting(default) == setting:
            continue
        settings[name] = setting
    named = json.dumps(settings, sort_keys=True) if settings else ""
    return f"{cls.__module__}.{cls.__qualname__}:{value}{named}"


def embedding_function(embeddings: Any = None) -> tuple[EmbedFn, str]:
    """Adapt any embedding model to ``texts -> (n, dim) float32 array``; returns it and a
    display name. None means :func:`default_embedding`.

    Example:
        >>> fn, name = embedding_function(lambda texts: [[1.0, 0.0] for _ in texts])
        >>> fn(["a", "b"]).shape, name
        ((2, 2), '<lambda>')
    """
    if embeddings is None:
        embeddings = default_embedding()
    name = type(embeddings).__name__
    if callable(getattr(embeddings, "embed_documents", None)):
        # LangChain Embeddings: documents in a batch.
        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "get_text_embedding_batch", None)):
        # LlamaIndex BaseEmbedding.
        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.get_text_embedding_batch(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "get_text_embedding", None)):

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray([embeddings.get_text_embedding(t) for t in texts], dtype=np.float32)
    elif callable(getattr(embeddings, "embed", None)):

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.embed(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "embed_many", None)):
        # The engine's LocalEmbedder: a batch is spread over the cores in one call.
        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.embed_many(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "embed_one", None)):

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray([embeddings.embed_one(t) for t in texts], dtype=np.float32)
    elif callable(embeddings):
        name = getattr(embeddings, "__name__", name)

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings(list(texts)), dtype=np.float32)
    else:
        raise TypeError(
            "embeddings must be a LangChain Embeddings, a LlamaIndex embedding, an object "
            f"with embed(texts), or a callable texts -> vectors; got {type(embeddings).__name__}"
        )
    return fn, name


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def leading_text(text: str, max_tokens: int) -> str:
    """The head of ``text`` holding about ``max_tokens`` tokens (4 characters per token,
    1 per CJK character, as :func:`costopt_core.tokens.estimate_tokens` counts), cut
    at a word boundary where there is one.

    Example:
        >>> leading_text("The quick brown fox jumps over the lazy dog", 4)
        'The quick brown'
        >>> leading_text("short", 64)
        'short'
        >>> leading_text("请分析并比较两种架构", 4)
        '请分析并'
    """
    if len(text) <= max_tokens:
        return text
    if text.isascii():
        limit = 4 * max_tokens
    else:
        limit, budget = 0, 4 * max_tokens
        for ch in text:  # a CJK character costs a whole token, others a quarter
            budget -= 4 if _CJK.match(ch) else 1
            if budget < 0:
                break
            limit += 1
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = head.rfind(" ")
    return head[:cut] if cut > limit // 2 else head


#: The ``meta`` entry holding a cache file's vector length. Not ``dim``: files given a
#: ``dim`` guessed off one stored row (a file of two configurations has two lengths)
#: are read as files from before the length was kept.
_LENGTH_KEY = "vector_length"


def _cache_file(cache_dir: str | os.PathLike[str], model_id: str, name: str) -> Path:
    """The SQLite file of ``model_id``'s vectors in ``cache_dir``: ``name`` (the model
    name) readable, the identity's hash unique. A file named the way older versions did
    (the identity's last 40 characters) is kept when it is there.

    Example:
        >>> identity = 'my.Embedder:BAAI/bge-small-en-v1.5{"dimensions": 256}'
        >>> _cache_file("/tmp", identity, "BAAI/bge-small-en-v1.5").name
        'BAAI-bge-small-en-v1-5-7441eed0906706b8.sqlite'
    """
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60]
    path = Path(cache_dir) / f"{slug}-{digest}.sqlite"
    older = re.sub(r"[^A-Za-z0-9]+", "-", model_id).strip("-")[-40:]
    legacy = Path(cache_dir) / f"{older}-{digest}.sqlite"
    return legacy if legacy != path and legacy.exists() and not path.exists() else path


def default_cache_dir() -> Path:
    """``$COSTOPT_CACHE_DIR/embeddings``, else ``$XDG_CACHE_HOME/costopt/embeddings``,
    else ``~/.cache/costopt/embeddings``."""
    root = os.environ.get("COSTOPT_CACHE_DIR")
    if root:
        return Path(root) / "embeddings"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "costopt" / "embeddings"


class CachedEmbedder:
    """``texts -> (n, dim)`` through ``model``, each distinct text embedded once.

    Args:
        model: any embedding model (see the module docs); None = :func:`default_embedding`.
        model_id: identity of the vectors; default :func:`model_identity`.
        cache_dir: folder of the on-disk cache; None = memory only.
        batch_size: texts per call to the model.
        max_tokens: embed only the first ``max_tokens`` tokens (estimated) of each text,
            cut at a word boundary; None = the whole text. A transformer's cost grows with
            the text, and a router must stay cheap on long prompts (see
            :func:`leading_text`).
    """

    def __init__(
        self,
        model: Any = None,
        *,
        model_id: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be an int >= 1 or None, got {max_tokens!r}")
        self.max_tokens = max_tokens
        self.model = default_embedding() if model is None else model
        self._fn, self.name = embedding_function(self.model)
        self.model_id = model_id or model_identity(self.model)
        self.batch_size = batch_size
        self._memory: dict[bytes, np.ndarray] = {}
        self._lock = threading.Lock()
        #: Length of the vectors: set by the first ones computed or by the disk cache
        #: (which keeps it); every later vector must match it.
        self.dim: int | None = None
        self.path: Path | None = None
        if cache_dir is not None and self.model_id is not None:
            name = self.model_id if model_id else _model_name(self.model) or self.model_id
            self.path = _cache_file(cache_dir, self.model_id, name)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS v (k BLOB PRIMARY KEY, x BLOB NOT NULL)")
                db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
                row = db.execute("SELECT v FROM meta WHERE k = ?", (_LENGTH_KEY,)).fetchone()
                self.dim = None if row is None else int(row[0])

    def embedded_text(self, text: str) -> str:
        """The part of ``text`` that is embedded: its head of ``max_tokens`` tokens.

        Example:
            >>> CachedEmbedder(lambda t: [[1.0]] * len(t), max_tokens=2).embedded_text(
            ...     "one two three four"
            ... )
            'one two'
        """
        return text if self.max_tokens is None else leading_text(text, self.max_tokens)

    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(self.path, timeout=30)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a sequence of str")
        if self.max_tokens is not None:
            texts = [self.embedded_text(t) for t in texts]
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        with self._lock:
            missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._memory}
        if missing and self.path is not None:
            self._read_disk(missing)
        if missing:
            self._compute(missing)
        with self._lock:
            rows = [self._memory[k] for k in keys]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows)

    def _read_disk(self, missing: dict[bytes, str]) -> None:
        blobs: dict[bytes, bytes] = {}
        keys = list(missing)
        with self._connect() as db:
            for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(f"SELECT k, x FROM v WHERE k IN ({marks})", chunk):
                    blobs[bytes(key)] = blob
        if blobs and self.dim is None:
            # A file from before the length was kept may hold two configurations' vectors
            # (identities did not name settings): the model's own length, from fresh
            # vectors, tells which stored ones are its.
            fresh = {k: t for k, t in missing.items() if k not in blobs}
            if not fresh:
                key = next(iter(blobs))
                fresh = {key: missing[key]}
                del blobs[key]
            self._compute(fresh)
            for key in fresh:
                del missing[key]
        size = 4 * (self.dim or 0)  # float32
        # Vectors of another length are another configuration's: embedded again and
        # overwritten.
        found = {k: np.frombuffer(b, dtype=np.float32) for k, b in blobs.items() if len(b) == size}
        with self._lock:
            self._memory.update(found)
        for key in found:
            del missing[key]

    def _compute(self, missing: dict[bytes, str]) -> None:
        items = list(missing.items())
        for i in range(0, len(items), self.batch_size):
            batch = items[i : i + self.batch_size]
            vectors = self._fn([t for _, t in batch])
            if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                raise ValueError(
                    f"{self.name} returned an array of shape {vectors.shape}; "
                    f"expected ({len(batch)}, dim)"
                )
            if not np.all(np.isfinite(vectors)):
                raise ValueError(f"{self.name} returned non-finite values")
            self._check_dim(int(vectors.shape[1]))
            pairs = zip((key for key, _ in batch), vectors, strict=True)
            rows = {key: np.ascontiguousarray(v, dtype=np.float32) for key, v in pairs}
            with self._lock:
                self._memory.update(rows)
            if self.path is not None:
                with self._connect() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO v (k, x) VALUES (?, ?)",
                        [(k, v.tobytes()) for k, v in rows.items()],
                    )

    def _check_dim(self, dim: int) -> None:
        """Vectors of one length per model identity: another length means the model's
        settings changed under the same identity, and the vectors cached before are
        stale (a router would compare vectors of two configurations)."""
        with self._lock:
            known = self.dim
            if known is None:
                self.dim = dim
        if known is None and self.path is not None:
            # Another process may have kept a length first: the file's length wins.
            with self._connect() as db:
                db.execute(
                    "INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)", (_LENGTH_KEY, str(dim))
                )
                row = db.execute("SELECT v FROM meta WHERE k = ?", (_LENGTH_KEY,)).fetchone()
            known = self.dim = int(row[0])
        if known is not None and known != dim:
            where = f"the cache {self.path}" if self.path else "this embedder's earlier vectors"
            raise ValueError(
                f"{self.name} returned {dim}-dimensional vectors, but {where} holds "
                f"{known}-dimensional ones for the same model identity ({self.model_id!r}): "
                "its settings changed. Pass model_id= naming the configuration, or another "
                "cache_dir"
            )

    def __repr__(self) -> str:
        where = f", cache={str(self.path)!r}" if self.path else ""
        return f"CachedEmbedder({self.name}{where})"


__all__ = [
    "NEURAL_PROVIDERS",
    "CachedEmbedder",
    "default_cache_dir",
    "default_embedding",
    "embedding_function",
    "leading_text",
    "model_identity",
]
