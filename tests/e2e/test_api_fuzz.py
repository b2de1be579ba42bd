"""Property-based testing of the whole API from its OpenAPI document (schemathesis), with workers running:
whatever a client sends, the API answers without a server error, and documented responses match their
schemas.

- Each operation alone, with generated input (most of it refused: random ids are 404, bad bodies 422).
- Scenarios that follow the document's OpenAPI links (``api/openapi_links.py``): a created assistant's
  id feeds its dialogs, documents, PATCH and DELETE; a dialog's its messages; a reply's its cancel; so
  updates and deletes reach real rows, and a row just created must be found (and one just deleted must
  not). They run as a Bearer user, as a browser session (cookies and the CSRF echo) and as an admin,
  each scenario with a fresh session of its account, restored to its role, so that a logout or a role
  change in one scenario cannot end the others.

Operations that call out of the system (Stripe, the Telegram Bot API) are left out: without those
services they answer 503 by design, and their own suites cover them.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    ensure_resource_availability,
    response_schema_conformance,
    use_after_free,
)

from api.cookies import ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER
from core.security import create_access_token
from tests.fixtures.billing import sql
from tests.fixtures.stack import Stack, running_stack

EXAMPLES = 10  # per operation, alone
SCENARIOS, STEPS, BATCHES = 20, 10, 3  # per kind of caller: linked scenarios per batch, calls in each
TIMEOUT = 15
EXTERNAL = (
    "/api/balance/checkout",
    "/api/payments/stripe/webhook",
    "/api/bots",
    "/api/telegram/webhook/{bot_id}",
)
CHECKS = [not_a_server_error, response_schema_conformance]
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def fuzz_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {**stack_env, "CHATAI_LLM_PROVIDER": "offline"}
    workers = ("llm", "embeddings", "billing")
    with running_stack(env, log_dir, workers=workers) as system:  # type: ignore[arg-type]
        yield system


@dataclass(frozen=True)
class Caller:
    """An account the fuzzer acts as: a ``user`` or an ``admin``, by Bearer header or browser cookies."""

    user_id: str
    role: str
    cookies: bool = False

    def session(self, database_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and cookies of a fresh session. The account is restored first, as a scenario may have
        deactivated it, changed its role or logged it out; the token is issued here as login would (no
        password hashing per scenario)."""
        sql(
            database_url,
            "UPDATE users SET role = %s, is_active = true WHERE id = %s",
            self.role,
            self.user_id,
        )
        token, _ = create_access_token(uuid.UUID(self.user_id))
        if self.cookies:
            csrf = secrets.token_urlsafe(16)
            return {CSRF_HEADER: csrf}, {ACCESS_COOKIE: token, CSRF_COOKIE: csrf}
        return {"Authorization": f"Bearer {token}"}, {}


def register(base_url: str, role: str, cookies: bool = False) -> Caller:
    email = f"fuzz-{role}-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as http:
        r = http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
    return Caller(r.json()["id"], role, cookies)


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: Stack) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{fuzz_stack.base_url}/api/openapi.json")
    # Scenarios follow the links the app documents, not ones schemathesis would guess, with valid input
    # so that they build real state (invalid input is the test of operations alone).
    loaded.config.phases.stateful.inference.algorithms = []
    loaded.config.phases.stateful.generation.modes = [GenerationMode.POSITIVE]
    for path in EXTERNAL:
        loaded = loaded.exclude(path=path)
    return loaded


def test_no_server_errors_and_documented_responses_match(
    api_schema: schemathesis.BaseSchema, fuzz_stack: Stack, database_url: str
) -> None:
    headers, _ = register(fuzz_stack.base_url, "user").session(database_url)
    # Logging out would end this run's session for every operation after it; the scenarios cover it.
    operations = [result.ok() for result in api_schema.exclude(path="/api/auth/logout").get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=fuzz_stack.base_url, headers=headers, checks=CHECKS, timeout=TIMEOUT
            )

        call()


def linked_operations(document: dict[str, Any]) -> list[str]:
    """The operationIds of every operation a link of the app's document starts from or leads to."""
    found = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                links = response.get("links", {})
                if links:
                    found.add(operation["operationId"])
                found |= {link["operationId"] for link in links.values()}
    return sorted(found)


@pytest.mark.parametrize(
    ("role", "cookies"),
    [("user", False), ("user", True), ("admin", False)],
    ids=["bearer", "cookie", "admin"],
)
def test_linked_scenarios_reach_real_rows_without_server_errors(
    api_schema: schemathesis.BaseSchema, fuzz_stack: Stack, database_url: str, role: str, cookies: bool
) -> None:
    base_url = fuzz_stack.base_url
    caller = register(base_url, role, cookies)
    # Scenarios start from the linked operations only, so they go deep; the test above covers the rest.
    document = httpx.get(f"{base_url}/api/openapi.json", timeout=TIMEOUT).json()
    linked = api_schema.include(operation_id=linked_operations(document))
    reached: Counter[tuple[str, str, int]] = Counter()
    completed = 0

    class Scenarios(linked.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.headers, self.cookies = caller.session(database_url)

        def teardown(self) -> None:
            nonlocal completed
            completed += 1
            super().teardown()

        def before_call(self, case: schemathesis.Case) -> None:
            # The schema names the Bearer header and the access cookie as ways in: generated values of them
            # must not replace the session's.
            case.cookies.update(self.cookies)
            if self.cookies:
                case.headers.pop("Authorization", None)
            case.headers.update(self.headers)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {
                "base_url": base_url,
                "headers": self.headers,
                "cookies": self.cookies,
                "timeout": TIMEOUT,
            }

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            reached[(case.operation.method.upper(), case.operation.path, response.status_code)] += 1

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs, recorder=self.recorder
            )

    def run_batch() -> None:
        target = completed + SCENARIOS
        for _ in range(5):
            try:
                Scenarios.run(
                    settings=settings(
                        max_examples=target - completed,
                        stateful_step_count=STEPS,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                        database=None,
                        phases=[Phase.generate],
                    )
                )
                return
            except FlakyStrategyDefinition:
                # A live server answers a replayed prefix differently (a row created, a token revoked),
                # so Hypothesis sees other steps on offer; go on with the scenarios left, as
                # schemathesis's own runner does.
                if completed >= target:
                    return

    def real_rows_written() -> set[tuple[str, str]]:
        """Updates and deletes by id that succeeded: the links took the scenarios to rows that existed."""
        return {
            (method, path)
            for method, path, status in reached
            if method in ("PATCH", "DELETE") and "{" in path and 200 <= status < 300
        }

    # Which steps a scenario takes is random: another batch runs in the rare case none wrote a real row.
    for _ in range(BATCHES):
        run_batch()
        if real_rows_written():
            break
    assert completed >= SCENARIOS // 2, f"only {completed} scenarios ran"
    assert real_rows_written(), f"no PATCH or DELETE reached a real row: {sorted(reached.items())}"
