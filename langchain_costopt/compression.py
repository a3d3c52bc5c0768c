"""Prompt compression for LangChain: fewer input tokens before the model call, and the
saving priced in the cost report as its own line.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    >>> from langchain_costopt import CostCallbackHandler, set_price
    >>> from langchain_costopt.compression import PromptCompressor
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> _ = set_price("compress-doc-model", input_per_token=1e-5, output_per_token=3e-5)
    >>> history = [SystemMessage("You answer briefly.")]
    >>> for i in range(20):
    ...     history += [HumanMessage(f"Question {i} about   the  weather?"),
    ...                 AIMessage(f"Answer {i}: it will be sunny all day long.")]
    >>> history.append(HumanMessage("And tomorrow?"))
    >>> compressor = PromptCompressor(max_tokens=60)
    >>> trimmed = compressor.invoke(history)
    >>> trimmed[0].content, trimmed[-1].content, len(trimmed) < len(history)
    ('You answer briefly.', 'And tomorrow?', True)
    >>> trimmed[-1].response_metadata["costopt_compressed_tokens"] > 0
    True
    >>> handler = CostCallbackHandler()
    >>> chain = compressor | SimulatedChatModel(model_name="compress-doc-model")
    >>> _ = chain.invoke(history, config={"callbacks": [handler]})
    >>> handler.to_dict()["saved_compression_usd"] > 0
    True

Three pieces, all on the engine :mod:`costopt_core.compression`:

* :class:`PromptCompressor`, a Runnable put before a chat model (``compressor | model``):
  squeezes whitespace in every message and trims the history to ``max_tokens`` with
  LangChain's own ``trim_messages`` (``strategy="last"``, ``start_on="human"``,
  ``include_system=True``): the system prompt stays, the latest turn stays whole (from
  the last human message on, tool calls and their results included, even when it alone
  is over the budget), and what is dropped is the oldest turns, whole, so a tool call
  is never separated from its result;
* ``langchain_costopt.middleware.compression.PromptCompressionMiddleware``: the same for
  every model call of a ``create_agent`` agent;
* :class:`ChunkDocumentCompressor`, a ``BaseDocumentCompressor`` for retrievers: drops
  duplicate and near-duplicate documents, keeps the most relevant to the query first
  and cuts them to a token budget.

How the saving is billed: the compressor counts the tokens it removed and sets
``response_metadata["costopt_compressed_tokens"]`` (``COMPRESSED_TOKENS_KEY``) on a copy
of the last message it hands on (the caller's messages are never changed);
:class:`~langchain_costopt.CostCallbackHandler` reads it and prices those tokens at the
answering model's input price, shown as the ``compression`` saving. Counts use the
model's tokenizer when ``model=`` names an OpenAI family and the ``[tokenizers]`` extra
is installed, else the offline estimate (~4 characters a token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.documents.compressor import BaseDocumentCompressor
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, trim_messages
from langchain_core.messages.utils import convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from pydantic import PrivateAttr

from costopt_core.compression import (
    ChunkCompressor,
    ChunkCompressorSettings,
    squeeze_whitespace,
)
from costopt_core.metadata_keys import COMPRESSED_TOKENS_KEY
from costopt_core.tokens import count_tokens
from langchain_costopt.messages import message_text

logger = logging.getLogger(__name__)

#: Chat formats add ~3 tokens per message (OpenAI's counting recipe, as
#: ``costopt_core.tokens.count_prompt_tokens`` counts them).
_PER_MESSAGE_TOKENS = 3

#: The LangChain custom event :class:`ChunkDocumentCompressor` dispatches with the tokens
#: it removed (``{"removed_tokens": n}``), for a handler that attributes them to the
#: model call that reads the documents.
DOCUMENTS_COMPRESSED_EVENT = "costopt_documents_compressed"


def message_tokens(message: BaseMessage, model: str | None = None) -> int:
    """Tokens ``message`` takes in a chat prompt: its text, its tool calls' names and
    arguments, and the chat format's per-message tokens.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> message_tokens(HumanMessage("Hello, world!"))  # 4 + 3
        7
    """
    tokens = count_tokens(message_text(message), model)[0] + _PER_MESSAGE_TOKENS
    if isinstance(message, AIMessage) and message.tool_calls:
        for call in message.tool_calls:
            arguments = json.dumps(call.get("args") or {}, ensure_ascii=False)
            tokens += count_tokens(f"{call.get('name', '')}{arguments}", model)[0]
    return tokens


def marked(messages: Sequence[BaseMessage], removed: int) -> list[BaseMessage]:
    """``messages`` with ``removed`` tokens added to the compression mark of the last one
    (a copy of it: the caller's message is not changed).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> original = [HumanMessage("hi")]
        >>> marked(original, 40)[-1].response_metadata
        {'costopt_compressed_tokens': 40}
        >>> original[-1].response_metadata
        {}
    """
    out = list(messages)
    if removed <= 0 or not out:
        return out
    last = out[-1]
    metadata = dict(last.response_metadata or {})
    earlier = metadata.get(COMPRESSED_TOKENS_KEY)
    # Two compressors in a row: the second adds to the first one's mark.
    total = removed + (earlier if type(earlier) is int and earlier > 0 else 0)
    metadata[COMPRESSED_TOKENS_KEY] = total
    out[-1] = last.model_copy(update={"response_metadata": metadata})
    return out


def documents_compressed_tokens(documents: Sequence[Document]) -> int:
    """Tokens :class:`ChunkDocumentCompressor` removed from the set ``documents`` came
    from (0 for documents it did not compress): to pass to :func:`marked` on the prompt
    built from them, so the cost handler counts that saving too.

    Example:
        >>> from langchain_core.documents import Document
        >>> docs = ChunkDocumentCompressor().compress_documents(
        ...     [Document("Same text."), Document("Same text.")], "text")
        >>> documents_compressed_tokens(docs)
        3
    """
    total = 0
    for document in documents:
        value = document.metadata.get(COMPRESSED_TOKENS_KEY)
        if type(value) is int and value > 0:
            total += value
    return total


def _squeezed(message: BaseMessage) -> BaseMessage:
    content: Any = message.content
    if isinstance(content, str):
        squeezed = squeeze_whitespace(content)
        if squeezed == content:
            return message
        return message.model_copy(update={"content": squeezed})
    if not isinstance(content, list):
        return message
    blocks: list[Any] = []
    changed = False
    for block in content:
        if isinstance(block, str):
            new: Any = squeeze_whitespace(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            new = {**block, "text": squeeze_whitespace(str(block.get("text", "")))}
        else:
            new = block
        changed = changed or new != block
        blocks.append(new)
    return message.model_copy(update={"content": blocks}) if changed else message


def _latest_turn_start(messages: Sequence[BaseMessage]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return index
    return max(0, len(messages) - 1)


def compress_messages(
    messages: Sequence[BaseMessage],
    *,
    max_tokens: int | None = None,
    squeeze: bool = True,
    model: str | None = None,
) -> tuple[list[BaseMessage], int]:
    """The compressed prompt (not yet marked) and how many tokens were removed.

    The system prompt (a first ``SystemMessage``) and the latest turn are always kept;
    the history between them is trimmed from the oldest end by ``trim_messages``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> kept, removed = compress_messages([HumanMessage("old   question"),
        ...                                    HumanMessage("new  one")], max_tokens=8)
        >>> [m.content for m in kept], removed
        (['new one'], 7)
    """
    original = list(messages)
    counts: dict[int, int] = {}

    def tokens_of(batch: Sequence[BaseMessage]) -> int:
        total = 0
        for message in batch:
            key = id(message)
            if key not in counts:
                counts[key] = message_tokens(message, model)
            total += counts[key]
        return total

    before = tokens_of(original)
    current = [_squeezed(m) for m in original] if squeeze else original
    if max_tokens is not None and tokens_of(current) > max_tokens:
        trimmed = trim_messages(
            current,
            max_tokens=max_tokens,
            token_counter=tokens_of,
            strategy="last",
            start_on="human",
            include_system=True,
            allow_partial=False,
        )
        latest = current[_latest_turn_start(current) :]
        if len(trimmed) < len(latest) or any(
            a is not b for a, b in zip(trimmed[-len(latest) :], latest, strict=True)
        ):
            # Over the budget even with no history: never cut into the latest turn.
            system = [current[0]] if isinstance(current[0], SystemMessage) else []
            trimmed = [*system, *latest] if latest[0] is not current[0] else latest
        current = trimmed
    return current, max(0, before - tokens_of(current))


def _check_budget(max_tokens: int | None) -> int | None:
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ValueError(f"max_tokens must be None or an int >= 1, got {max_tokens!r}")
    return max_tokens


def _as_messages(value: LanguageModelInput) -> list[BaseMessage]:
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return convert_to_messages([("human", value)])
    if isinstance(value, Sequence):
        return convert_to_messages(value)
    raise TypeError(
        "PromptCompressor input must be a string, a PromptValue or a list of messages, "
        f"got {type(value).__name__}"
    )


class PromptCompressor(Runnable[LanguageModelInput, list[BaseMessage]]):
    """Squeeze a chat prompt and trim its history to a token budget (module doc).

    Args:
        max_tokens: the prompt's token budget; ``None``: only squeeze whitespace.
        squeeze: squeeze whitespace in every message's text.
        model: the model whose tokenizer counts tokens (``None``: the estimate).

    Input: a string, a ``PromptValue`` or a list of messages (what a chat model takes);
    output: the list of messages to send, the last one marked with the tokens removed.
    """

    def __init__(
        self, max_tokens: int | None = None, *, squeeze: bool = True, model: str | None = None
    ) -> None:
        self.max_tokens = _check_budget(max_tokens)
        self.squeeze = bool(squeeze)
        self.model = model

    def __repr__(self) -> str:
        return f"PromptCompressor(max_tokens={self.max_tokens!r}, squeeze={self.squeeze!r})"

    def compress(self, messages: Sequence[BaseMessage]) -> tuple[list[BaseMessage], int]:
        """The marked prompt to send and the tokens removed."""
        kept, removed = compress_messages(
            messages, max_tokens=self.max_tokens, squeeze=self.squeeze, model=self.model
        )
        return marked(kept, removed), removed

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[BaseMessage]:
        return self._call_with_config(
            lambda value: self.compress(_as_messages(value))[0],
            input,
            ensure_config(config),
            run_type="prompt",
        )

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[BaseMessage]:
        async def compress(value: LanguageModelInput) -> list[BaseMessage]:
            # Pure computation on text already in memory: nothing to await, no thread.
            return self.compress(_as_messages(value))[0]

        return await self._acall_with_config(
            compress, input, ensure_config(config), run_type="prompt"
        )


class ChunkDocumentCompressor(BaseDocumentCompressor, ChunkCompressorSettings):
    """Dedup, rank and cut retrieved documents to a token budget (a retriever's
    document compressor; ``ContextualCompressionRetriever`` takes it).

    Example:
        >>> from langchain_core.documents import Document
        >>> docs = [Document("Paris is the capital of France."),
        ...         Document("Paris is the capital  of France."),
        ...         Document("Lyon is known for its food.")]
        >>> kept = ChunkDocumentCompressor().compress_documents(docs, "capital of France")
        >>> [d.page_content for d in kept]
        ['Paris is the capital of France.', 'Lyon is known for its food.']
        >>> kept[0].metadata["costopt_compressed_tokens"]
        8

    The kept documents are copies (text squeezed, perhaps cut); the first carries the
    tokens removed from the whole set in ``metadata["costopt_compressed_tokens"]``
    (:func:`documents_compressed_tokens` reads it: mark the prompt built from the
    documents with it, ``marked(messages, documents_compressed_tokens(docs))``, and the
    cost handler counts the saving), and a ``costopt_documents_compressed`` custom event
    is dispatched with them when the compressor runs inside a LangChain run. Arguments:
    those of :class:`costopt_core.compression.ChunkCompressor`.
    """

    _engine: ChunkCompressor = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._engine = self.chunk_compressor()

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        result = self._engine.compress([d.page_content for d in documents], query)
        kept = [
            documents[index].model_copy(
                update={"page_content": text, "metadata": dict(documents[index].metadata)}
            )
            for index, text in zip(result.kept, result.texts, strict=True)
        ]
        if kept and result.saved_tokens:
            kept[0].metadata[COMPRESSED_TOKENS_KEY] = result.saved_tokens
            _announce(result.saved_tokens, callbacks)
        return kept

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return self.compress_documents(documents, query, callbacks)


def _announce(removed: int, callbacks: Callbacks | None) -> None:
    config: RunnableConfig | None = {"callbacks": callbacks} if callbacks is not None else None
    try:
        data = {"removed_tokens": removed}
        dispatch_custom_event(DOCUMENTS_COMPRESSED_EVENT, data, config=config)
    except RuntimeError:
        pass  # not inside a LangChain run: nobody to tell
    except Exception:  # a listener's fault must not fail the retrieval
        logger.exception("dispatching %s failed", DOCUMENTS_COMPRESSED_EVENT)


__all__ = [
    "DOCUMENTS_COMPRESSED_EVENT",
    "ChunkDocumentCompressor",
    "PromptCompressor",
    "compress_messages",
    "documents_compressed_tokens",
    "marked",
    "message_tokens",
]
