"""The ``openai`` embedding provider over real HTTP against the fake ``/v1/embeddings``: batches, retries on
429 and 5xx, no retry on other 4xx, and the vectors' checks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from services.knowledge.embedding import EmbeddingError, OpenAIEmbedder, TransientEmbeddingError
from tests.fixtures.fake_llm import hashed_embedding
from tests.fixtures.stack import FakeLLM

API_KEY = "embed-key"


@pytest.fixture(scope="module")
def fake(log_dir: Path) -> Iterator[FakeLLM]:
    server = FakeLLM(log_dir, {}, api_key=API_KEY)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(fake: FakeLLM) -> None:
    fake.configure(reset=True, embedding_faults=[], embedding_delay_ms=0, embedding_dimensions=384)


def embedder(fake: FakeLLM, **overrides: object) -> OpenAIEmbedder:
    values: dict[str, object] = {
        "embedding_provider": "openai",
        "embedding_base_url": fake.base_url,
        "embedding_api_key": API_KEY,
        "embedding_model": "fake-embed",
        "embedding_batch_size": 4,
        "embedding_max_attempts": 3,
    }
    return OpenAIEmbedder(Settings(**{**values, **overrides}))  # type: ignore[arg-type]


def stats(fake: FakeLLM) -> dict[str, object]:
    return httpx.get(fake.base_url.removesuffix("/v1") + "/_stats", timeout=5).json()


def test_texts_are_embedded_in_batches_and_in_order(fake: FakeLLM) -> None:
    texts = [f"passage number {i} about topic {i % 3}" for i in range(10)]
    vectors = embedder(fake).embed(texts)
    assert stats(fake)["embedding_batches"] == [4, 4, 2]
    assert vectors == [hashed_embedding(t, 384) for t in texts]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vectors)


def test_429_and_5xx_are_retried_until_a_batch_succeeds(fake: FakeLLM) -> None:
    fake.configure(embedding_faults=[429, 500, 503])
    vectors = embedder(fake, embedding_max_attempts=4).embed(["hello world"])
    outcomes = stats(fake)["by_outcome"]
    assert outcomes == {"fault_429": 1, "fault_500": 1, "fault_503": 1, "embeddings_ok": 1}, outcomes
    assert vectors == [hashed_embedding("hello world", 384)]


def test_transient_faults_give_up_after_the_attempts(fake: FakeLLM) -> None:
    fake.configure(embedding_faults=[502, 502, 502, 502])
    with pytest.raises(TransientEmbeddingError):
        embedder(fake, embedding_max_attempts=3).embed(["hello"])
    assert stats(fake)["by_outcome"] == {"fault_502": 3}


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_not_retried(fake: FakeLLM, status: int) -> None:
    fake.configure(embedding_faults=[status])
    with pytest.raises(EmbeddingError) as caught:
        embedder(fake).embed(["hello"])
    assert not isinstance(caught.value, TransientEmbeddingError)
    assert stats(fake)["by_outcome"] == {f"fault_{status}": 1}


def test_a_wrong_key_is_refused_without_retrying(fake: FakeLLM) -> None:
    with pytest.raises(EmbeddingError) as caught:
        embedder(fake, embedding_api_key="wrong").embed(["hello"])
    assert not isinstance(caught.value, TransientEmbeddingError)
    assert stats(fake)["by_outcome"] == {"unauthorized": 1}


def test_vectors_of_another_size_are_refused(fake: FakeLLM) -> None:
    fake.configure(embedding_dimensions=256)
    with pytest.raises(EmbeddingError, match="384"):
        embedder(fake).embed(["hello"])


def test_an_unreachable_endpoint_is_transient(fake: FakeLLM) -> None:
    from tests.fixtures.processes import free_port

    settings = Settings(
        embedding_provider="openai",
        embedding_base_url=f"http://127.0.0.1:{free_port()}/v1",
        embedding_max_attempts=2,
    )
    with pytest.raises(TransientEmbeddingError):
        OpenAIEmbedder(settings).embed(["hello"])
