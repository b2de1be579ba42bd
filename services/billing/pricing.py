"""Model prices (micro-units per million tokens) and what a number of tokens costs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import get_settings
from models import DEFAULT_PRICE_MODEL, Price
from services.chat.prompt import message_tokens

MTOK = 1_000_000


def cost_micros(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    """Exact integer cost, rounded up to the next micro-unit."""
    numerator = prompt_tokens * price.input_micros_per_mtok + completion_tokens * price.output_micros_per_mtok
    return -(-numerator // MTOK)


async def price_for(session: AsyncSession, model: str | None) -> Price:
    """The model's price, or the default row ``*`` for models without one."""
    wanted = model or DEFAULT_PRICE_MODEL
    # Two equalities rather than IN: an IN list is re-rendered on every execution.
    query = select(Price).where(or_(Price.model == wanted, Price.model == DEFAULT_PRICE_MODEL))
    rows = (await session.scalars(query)).all()
    by_model = {row.model: row for row in rows}
    price = by_model.get(wanted) or by_model.get(DEFAULT_PRICE_MODEL)
    if price is None:  # the migration seeds "*"; an admin may not delete it, but be safe: free
        return Price(model=DEFAULT_PRICE_MODEL, input_micros_per_mtok=0, output_micros_per_mtok=0,
                     currency=get_settings().billing_currency)  # fmt: skip
    return price


def worst_case_prompt_tokens(system_prompt: str, content: str, max_tokens: int) -> int:
    """The prompt can fill the context window up to ``max_tokens`` (history is trimmed to fit), and never
    drops the system prompt or the new message, so this bounds it without reading the history."""
    settings = get_settings()
    return max(
        settings.llm_context_tokens - max_tokens, message_tokens(system_prompt) + message_tokens(content)
    )


def hold_micros(price: Price, system_prompt: str, content: str, max_tokens: int) -> int:
    return cost_micros(price, worst_case_prompt_tokens(system_prompt, content, max_tokens), max_tokens)


async def list_prices(session: AsyncSession) -> Sequence[Price]:
    return (await session.scalars(select(Price).order_by(Price.model))).all()


async def set_price(session: AsyncSession, model: str, input_micros: int, output_micros: int) -> Price:
    currency = get_settings().billing_currency
    values = {
        "input_micros_per_mtok": input_micros,
        "output_micros_per_mtok": output_micros,
        "currency": currency,
    }
    statement = (
        pg_insert(Price)
        .values(model=model, **values)
        .on_conflict_do_update(index_elements=[Price.model], set_={**values, "updated_at": func.now()})
        .returning(Price)
        .execution_options(populate_existing=True)
    )
    price = (await session.scalars(statement)).one()
    return price
