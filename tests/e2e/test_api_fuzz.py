"""Property-based testing of the whole API from its OpenAPI document (schemathesis): whatever a client
sends, the API answers without a server error, and documented responses match their schemas.

Operations that call out of the system (Stripe, the Telegram Bot API, the embeddings worker) are left
out: without those services they answer 503 by design, and their own suites cover them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.fixtures.stack import Stack, running_stack

EXAMPLES = 25  # per operation: the whole run stays within a few minutes
EXTERNAL = (
    "/api/balance/checkout",
    "/api/payments/stripe/webhook",
    "/api/bots",
    "/api/telegram/webhook/{bot_id}",
    "/api/assistants/{assistant_id}/search",
)


@pytest.fixture(scope="module")
def fuzz_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {**stack_env, "CHATAI_LLM_PROVIDER": "offline"}
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture(scope="module")
def bearer(fuzz_stack: Stack) -> dict[str, str]:
    email, password = f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    with httpx.Client(base_url=fuzz_stack.base_url, timeout=10) as http:
        assert http.post("/api/auth/register", json={"email": email, "password": password}).status_code == 201
        tokens = http.post("/api/auth/login", json={"email": email, "password": password}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: Stack) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{fuzz_stack.base_url}/api/openapi.json")
    for path in EXTERNAL:
        loaded = loaded.exclude(path=path)
    return loaded


def test_no_server_errors_and_documented_responses_match(
    api_schema: schemathesis.BaseSchema, fuzz_stack: Stack, bearer: dict[str, str]
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=fuzz_stack.base_url,
                headers=bearer,
                checks=[not_a_server_error, response_schema_conformance],
                timeout=15,
            )

        call()
