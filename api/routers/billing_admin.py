"""Admin endpoints of billing: prices, manual top-ups, refunds of charges, reconciliation findings."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, status

from api.billing_schemas import (
    MismatchOut,
    PriceIn,
    PriceOut,
    PricesOut,
    ReconciliationOut,
    RefundIn,
    TopupIn,
    TransactionOut,
)
from api.deps import AdminUser, SessionDep
from models import PriceKind
from services.accounts import audit
from services.billing import accounts, pricing, reconcile

router = APIRouter(prefix="/api/admin", tags=["admin"])

REFUNDED = "charge_refunded"
PRICE_SET = "price_set"


@router.get("/prices", response_model=PricesOut)
async def list_prices(_: AdminUser, session: SessionDep) -> PricesOut:
    return PricesOut(items=[PriceOut.model_validate(p) for p in await pricing.list_prices(session)])


@router.put("/prices/{model}", response_model=PriceOut)
async def put_price(
    body: PriceIn, admin: AdminUser, session: SessionDep, model: str = Path(min_length=1, max_length=200)
) -> PriceOut:
    kind = PriceKind(body.kind) if body.kind else None
    price = await pricing.set_price(
        session, model, body.input_micros_per_mtok, body.output_micros_per_mtok, kind
    )
    # Prices decide what every owner pays, so who changed one and to what is kept.
    audit.record(
        session, PRICE_SET, actor_id=admin.id, subject=model,
        details={
            "input_micros_per_mtok": price.input_micros_per_mtok,
            "output_micros_per_mtok": price.output_micros_per_mtok, "kind": str(price.kind),
        },
    )  # fmt: skip
    return PriceOut.model_validate(price)


@router.post("/users/{user_id}/topup", status_code=status.HTTP_201_CREATED, response_model=TransactionOut)
async def topup(user_id: uuid.UUID, body: TopupIn, _: AdminUser, session: SessionDep) -> TransactionOut:
    transaction = await accounts.admin_topup(
        session, user_id, body.amount_micros, body.reason, body.idempotency_key
    )
    return TransactionOut.model_validate(transaction)


@router.post(
    "/transactions/{transaction_id}/refund",
    status_code=status.HTTP_201_CREATED,
    response_model=TransactionOut,
)
async def refund(
    transaction_id: uuid.UUID, body: RefundIn, admin: AdminUser, session: SessionDep
) -> TransactionOut:
    transaction = await accounts.refund_charge(
        session, transaction_id, body.amount_micros, body.reason, body.idempotency_key
    )
    audit.record(
        session, REFUNDED, actor_id=admin.id, subject=str(transaction_id),
        details={"refund_id": str(transaction.id), "amount_micros": transaction.amount_micros},
    )  # fmt: skip
    return TransactionOut.model_validate(transaction)


@router.get("/reconciliation", response_model=ReconciliationOut)
async def reconciliation(_: AdminUser, session: SessionDep) -> ReconciliationOut:
    found = await reconcile.recent_mismatches(session)
    return ReconciliationOut(items=[MismatchOut.model_validate(m) for m in found])
