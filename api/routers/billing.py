from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, status

from api.billing_schemas import (
    BalanceOut,
    ChatModelOut,
    ChatModelsOut,
    CheckoutIn,
    CheckoutOut,
    TransactionOut,
    WebhookOut,
)
from api.deps import CurrentUser, PageDep, SessionDep
from api.schemas import PageOut
from services.billing import ledger, pricing
from services.billing import stripe as stripe_payments

router = APIRouter(prefix="/api", tags=["billing"])


@router.get("/balance", response_model=BalanceOut)
async def get_balance(user: CurrentUser, session: SessionDep) -> BalanceOut:
    balance = await ledger.get_balance(session, user.id)
    return BalanceOut(
        balance_micros=balance.balance_micros,
        currency=balance.currency,
        held_micros=balance.held_micros,
        available_micros=balance.balance_micros - balance.held_micros,
    )


@router.get("/models", response_model=ChatModelsOut)
async def list_chat_models(_: CurrentUser, session: SessionDep) -> ChatModelsOut:
    """The models an assistant may use (priced chat models), the same for every user."""
    return ChatModelsOut(items=[ChatModelOut.model_validate(p) for p in await pricing.chat_models(session)])


@router.get("/balance/transactions", response_model=PageOut[TransactionOut])
async def list_transactions(user: CurrentUser, session: SessionDep, page: PageDep) -> PageOut[TransactionOut]:
    result = await ledger.list_for_owner(session, user.id, page.limit, page.cursor)
    return PageOut(
        items=[TransactionOut.model_validate(t) for t in result.items], next_cursor=result.next_cursor
    )


@router.get("/balance/transactions/{transaction_id}", response_model=TransactionOut)
async def get_transaction(
    transaction_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> TransactionOut:
    return TransactionOut.model_validate(await ledger.get_for_owner(session, user.id, transaction_id))


@router.post("/balance/checkout", status_code=status.HTTP_201_CREATED, response_model=CheckoutOut)
async def create_checkout(body: CheckoutIn, user: CurrentUser, session: SessionDep) -> CheckoutOut:
    checkout = await stripe_payments.create_checkout(session, user.id, body.amount_micros)
    return CheckoutOut(id=checkout.session_id, url=checkout.url)


@router.post("/payments/stripe/webhook", response_model=WebhookOut)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookOut:
    outcome = await stripe_payments.handle_webhook(session, await request.body(), stripe_signature)
    return WebhookOut(received=True, outcome=outcome)
