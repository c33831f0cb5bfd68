"""The memory core: long-term memory (hnswlib / exact), short-term context, context packer, embedders."""

from agemem_gym.memory.context_ops import (
    ContextFilter,
    CosineFilter,
    ExtractiveSummarizer,
    LLMFilter,
    LLMSummarizer,
    Summarizer,
)
from agemem_gym.memory.embedders import (
    CallableEmbedder,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    make_embedder,
)
from agemem_gym.memory.ltm import AUTO_HNSW_THRESHOLD, LongTermMemory, MemoryItem
from agemem_gym.memory.packer import pack_context
from agemem_gym.memory.stm import (
    ApproxTokenCounter,
    HFTokenCounter,
    Message,
    PackedContext,
    ShortTermMemory,
    TokenCounter,
)

__all__ = [
    "AUTO_HNSW_THRESHOLD",
    "ApproxTokenCounter",
    "CallableEmbedder",
    "ContextFilter",
    "CosineFilter",
    "Embedder",
    "ExtractiveSummarizer",
    "HFTokenCounter",
    "HashingEmbedder",
    "LLMFilter",
    "LLMSummarizer",
    "LongTermMemory",
    "MemoryItem",
    "Message",
    "MiniLMEmbedder",
    "PackedContext",
    "ShortTermMemory",
    "Summarizer",
    "TokenCounter",
    "make_embedder",
    "pack_context",
]
