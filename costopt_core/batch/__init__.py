"""Deferred calls through the providers' batch APIs, at their batch rates (half price).

Example:
    >>> from costopt_core.batch import AnthropicBatchAPI, batch_requests, run_batch
    >>> from costopt_core.batch.imitation import ImitationBatchServer
    >>> with ImitationBatchServer(processing_s=0.01) as server:
    ...     api = AnthropicBatchAPI(server.api_key, server.anthropic_base_url)
    ...     results = run_batch(api, batch_requests("claude-haiku-4-5", [
    ...         [{"role": "user", "content": "hi"}], [{"role": "user", "content": "bye"}]]),
    ...         poll_interval_s=0.01)
    >>> [r.custom_id for r in results], all(r.ok for r in results)
    (['request-0', 'request-1'], True)

OpenAI's Batch API and Anthropic's Message Batches answer within 24 hours at half the
price of direct calls. This package is the framework-free engine: the requests and
results (:mod:`.requests`), each provider's wire format (:mod:`.openai`,
:mod:`.anthropic`), the submit / poll / fetch loop (:mod:`.client`, sync and async, over
``httpx``), a deferred batch of framework runs, admitted, submitted and settled
(:mod:`.deferred`), and a local imitation of both APIs for tests and examples
(:mod:`.imitation`). The faces (``langchain_costopt.batch``,
``llamaindex_costopt.batch``) only say how a framework run starts, ends and fails, and
turn the results into framework answers marked
``costopt_core.metadata_keys.BATCH_KEY``, which the cost handlers bill at the batch rate.
"""

from costopt_core.batch.anthropic import AnthropicBatchAPI
from costopt_core.batch.client import (
    BatchJob,
    BatchRun,
    BatchRunOptions,
    PollSettings,
    arun_batch,
    run_batch,
)
from costopt_core.batch.openai import OpenAIBatchAPI
from costopt_core.batch.requests import (
    BatchAPIError,
    BatchRequest,
    BatchRequestError,
    BatchResult,
    BatchTimeoutError,
    ToolCall,
    batch_requests,
)
from costopt_core.batch.target import (
    KEY_ENV,
    PROVIDERS,
    BatchTarget,
    batch_api,
    check_provider,
    resolve_target,
)
from costopt_core.batch.wire import BatchProvider, BatchStatus, HttpCall, HttpReply, Wait

__all__ = [
    "KEY_ENV",
    "PROVIDERS",
    "AnthropicBatchAPI",
    "BatchAPIError",
    "BatchJob",
    "BatchProvider",
    "BatchRequest",
    "BatchRequestError",
    "BatchResult",
    "BatchRun",
    "BatchRunOptions",
    "BatchStatus",
    "BatchTarget",
    "BatchTimeoutError",
    "HttpCall",
    "HttpReply",
    "OpenAIBatchAPI",
    "PollSettings",
    "ToolCall",
    "Wait",
    "arun_batch",
    "batch_api",
    "batch_requests",
    "check_provider",
    "resolve_target",
    "run_batch",
]
