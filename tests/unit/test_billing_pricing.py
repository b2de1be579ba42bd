"""Pure pieces of billing: integer costs rounded up, and the worst-case hold of a reply."""

from __future__ import annotations

from core.settings import get_settings
from models import Price
from services.billing import pricing
from services.chat.prompt import message_tokens


def price(inp: int, out: int) -> Price:
    return Price(model="m", input_micros_per_mtok=inp, output_micros_per_mtok=out, currency="USD")


def test_cost_is_exact_integers_rounded_up() -> None:
    assert pricing.cost_micros(price(1_000_000, 2_000_000), 3, 4) == 11
    assert pricing.cost_micros(price(150_000, 600_000), 1, 0) == 1  # 0.15 micro-units round up to 1
    assert pricing.cost_micros(price(150_000, 600_000), 0, 0) == 0
    assert pricing.cost_micros(price(150_000, 600_000), 1_000_000, 1_000_000) == 750_000
    assert isinstance(pricing.cost_micros(price(3, 7), 10**9, 10**9), int)


def test_hold_covers_a_full_context_window() -> None:
    context = get_settings().llm_context_tokens
    hold = pricing.hold_micros(price(1_000_000, 1_000_000), "be nice", "hello", 100)
    assert hold == context  # (context - max_tokens) prompt tokens + max_tokens output tokens


def test_hold_never_drops_the_new_message() -> None:
    long_message = "word " * 20_000
    prompt = pricing.worst_case_prompt_tokens("", long_message, 100)
    assert prompt >= message_tokens(long_message) > get_settings().llm_context_tokens
