"""NodeCompressor: a LlamaIndex node postprocessor that sends fewer context tokens to the
LLM (duplicates dropped, most relevant nodes first, cut to a token budget), with the
saving priced by :class:`~llamaindex_costopt.CostEventHandler` as its own line.

Example:
    >>> from llama_index.core.schema import NodeWithScore, TextNode
    >>> from llamaindex_costopt.compression import NodeCompressor
    >>> nodes = [NodeWithScore(node=TextNode(text=t), score=1.0) for t in (
    ...     "Paris is the capital of France.",
    ...     "Paris is the capital  of France.",   # a duplicate, spaced differently
    ...     "Lyon is known for its food.")]
    >>> kept = NodeCompressor().postprocess_nodes(nodes, query_str="capital of France")
    >>> [n.node.get_content() for n in kept]
    ['Paris is the capital of France.', 'Lyon is known for its food.']

In a query engine, put it in ``node_postprocessors=[NodeCompressor(max_tokens=...)]``.
The steps are the engine's (:class:`costopt_core.compression.ChunkCompressor`): squeeze
whitespace, rank by BM25 against the query, drop near-duplicates and repeated
boilerplate lines, cut to ``max_tokens``. Kept nodes are copies (the index's nodes are
never changed) with their retrieval scores.

How the saving is billed: after compressing, it dispatches a
:class:`PromptCompressedEvent` with the tokens it removed. ``CostEventHandler`` books
them on the next priced LLM call of the same query (the same root span: a query
engine's ``query``), at that model's input price, as the ``compression`` saving. Called
outside any span, the removed tokens go to the next LLM call made outside any span.
Tokens are counted on the nodes' text without their metadata, so the figure is a lower
bound when metadata is sent too.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from costopt_core.compression import ChunkCompressor, ChunkCompressorSettings

dispatcher = get_dispatcher(__name__)


class PromptCompressedEvent(BaseEvent):
    """A compressor removed ``removed_tokens`` input tokens from the prompt of the LLM
    call that follows in this span tree."""

    removed_tokens: int
    tokens_before: int = 0
    tokens_after: int = 0

    @classmethod
    def class_name(cls) -> str:
        return "PromptCompressedEvent"


class NodeCompressor(BaseNodePostprocessor, ChunkCompressorSettings):
    """Dedup, rank and cut retrieved nodes to a token budget (see the module doc).

    Args:
        max_tokens: token budget of the kept nodes' text; ``None``: no cut.
        near_duplicate_threshold: share of a node's word 3-grams already in a kept node
            above which it is dropped, in (0, 1].
        squeeze: squeeze whitespace in the kept nodes' text.
        drop_repeated_lines: drop lines of 4+ words already seen in a kept node.
        granularity: over the budget, ``"sentence"`` keeps the sentences most relevant
            to the query from every kept node, ``"chunk"`` whole nodes (see the engine).
        model: the model whose tokenizer counts tokens (``None``: the estimate).
    """

    _engine: ChunkCompressor = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._engine = self.chunk_compressor()

    @classmethod
    def class_name(cls) -> str:
        return "CostoptNodeCompressor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        # Only text nodes are compressed; others (images...) pass through untouched.
        texts = [n for n in nodes if isinstance(n.node, TextNode)]
        others = [n for n in nodes if not isinstance(n.node, TextNode)]
        query = query_bundle.query_str if query_bundle is not None else None
        result = self._engine.compress(
            [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in texts], query
        )
        kept = [
            NodeWithScore(
                node=texts[index].node.model_copy(update={"text": text}),
                score=texts[index].score,
            )
            for index, text in zip(result.kept, result.texts, strict=True)
        ]
        if result.saved_tokens:
            dispatcher.event(
                PromptCompressedEvent(
                    removed_tokens=result.saved_tokens,
                    tokens_before=result.tokens_before,
                    tokens_after=result.tokens_after,
                )
            )
        return [*kept, *others]


__all__ = ["NodeCompressor", "PromptCompressedEvent"]
