"""Model prices (micro-units per million tokens) and what a number of tokens costs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import get_settings
from models import DEFAULT_PRICE_MODEL, Price, PriceKind
from services.chat.prompt import message_tokens
from services.errors import Conflict, ValidationFailed

MTOK = 1_000_000


def cost_micros(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    """Exact integer cost, rounded up to the next micro-unit."""
    numerator = prompt_tokens * price.input_micros_per_mtok + completion_tokens * price.output_micros_per_mtok
    return -(-numerator // MTOK)


async def price_for(session: AsyncSession, model: str | None) -> Price:
    """The model's price, or the default row ``*`` for models without one: the price of an embedding model
    configured without a row. A reply's model always has its own row (its hold needed it)."""
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


async def chat_models(session: AsyncSession) -> Sequence[Price]:
    """The models an assistant may use: chat models with a price of their own."""
    query = select(Price).where(Price.kind == PriceKind.chat, Price.model != DEFAULT_PRICE_MODEL)
    return (await session.scalars(query.order_by(Price.model))).all()


async def ensure_chat_model(session: AsyncSession, model: str) -> None:
    """Refuse (422, with the allowed models) a model that is not a priced chat model."""
    allowed = [price.model for price in await chat_models(session)]
    if model not in allowed:
        raise ValidationFailed(
            f"The model {model!r} is not available",
            details=[{
                "loc": ["body", "model"], "msg": "not a priced chat model", "type": "model_not_available",
                "allowed": allowed,
            }],
        )  # fmt: skip


async def chat_price(session: AsyncSession, model: str) -> Price:
    """A reply's price: its chat model's own row (409 when an admin has since made it an embedding model)."""
    price = await session.get(Price, model)
    if price is None or price.kind != PriceKind.chat or model == DEFAULT_PRICE_MODEL:
        raise Conflict(
            "The assistant's model is no longer available; choose another (GET /api/models)",
            code="model_not_available",
        )
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


def _default_kind(model: str) -> PriceKind:
    return PriceKind.embedding if model == DEFAULT_PRICE_MODEL else PriceKind.chat


async def set_price(
    session: AsyncSession, model: str, input_micros: int, output_micros: int, kind: PriceKind | None = None
) -> Price:
    """Price a model (this is how a model becomes available); a new row is a chat model unless ``kind``
    says otherwise, an existing one keeps its kind unless ``kind`` is given."""
    if model == DEFAULT_PRICE_MODEL and kind == PriceKind.chat:
        raise ValidationFailed(
            "The default price is never a chat model's",
            details=[{"loc": ["body", "kind"], "msg": "the default row is not a chat model"}],
        )
    currency = get_settings().billing_currency
    values: dict[str, object] = {
        "input_micros_per_mtok": input_micros,
        "output_micros_per_mtok": output_micros,
        "currency": currency,
    }
    if kind is not None:
        values["kind"] = kind.value
    statement = (
        pg_insert(Price)
        .values(model=model, **{"kind": _default_kind(model).value, **values})
        .on_conflict_do_update(index_elements=[Price.model], set_={**values, "updated_at": func.now()})
        .returning(Price)
        .execution_options(populate_existing=True)
    )
    price = (await session.scalars(statement)).one()
    return price
