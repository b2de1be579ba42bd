"""Self-service top-ups through Stripe Checkout, and the webhook that credits them exactly once.

The SDK talks to ``stripe_api_base`` (a fake Stripe in tests). A completed session is credited with the
key ``stripe:<session id>``, so a replayed event changes nothing; a forged one fails the SDK's signature
check; a session this platform did not create is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe as stripe_sdk
from sqlalchemy.ext.asyncio import AsyncSession
from stripe.params.checkout import SessionCreateParams

from core.settings import get_settings
from models import CheckoutSession, TransactionKind
from services.billing import ledger
from services.billing.ledger import Entry
from services.errors import ServiceError, Unavailable

log = logging.getLogger("chatai.billing.stripe")

# Stripe amounts are in the currency's minor unit (cents for the two-decimal currencies billed here).
MICROS_PER_MINOR_UNIT = 10_000
COMPLETED_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class InvalidSignature(ServiceError):
    status = 400
    code = "invalid_signature"


@dataclass(frozen=True)
class Checkout:
    session_id: str
    url: str


def _client() -> stripe_sdk.StripeClient:
    settings = get_settings()
    if not settings.stripe_api_key:
        raise Unavailable("Payments are not configured")
    return stripe_sdk.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base}, max_network_retries=2
    )


async def create_checkout(session: AsyncSession, owner_id: uuid.UUID, amount_micros: int) -> Checkout:
    settings = get_settings()
    if amount_micros <= 0 or amount_micros % MICROS_PER_MINOR_UNIT:
        raise ServiceError(f"amount_micros must be a positive multiple of {MICROS_PER_MINOR_UNIT}")
    base = settings.public_base_url.rstrip("/")
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": settings.billing_currency.lower(),
                    "unit_amount": amount_micros // MICROS_PER_MINOR_UNIT,
                    "product_data": {"name": "ChatAI balance top-up"},
                },
            }
        ],
        "success_url": settings.stripe_success_url or f"{base}/billing/success",
        "cancel_url": settings.stripe_cancel_url or f"{base}/billing/cancel",
        "client_reference_id": str(owner_id),
        "metadata": {"user_id": str(owner_id), "amount_micros": str(amount_micros)},
    }
    client = _client()
    try:
        created = await asyncio.to_thread(client.v1.checkout.sessions.create, params)
    except stripe_sdk.StripeError as exc:
        log.warning("stripe checkout creation failed: %s", exc)
        raise Unavailable("The payment provider is unavailable") from exc
    session.add(
        CheckoutSession(
            id=created.id, owner_id=owner_id, amount_micros=amount_micros, currency=settings.billing_currency
        )
    )
    await session.flush()
    return Checkout(created.id, created.url or "")


async def handle_webhook(session: AsyncSession, payload: bytes, signature: str | None) -> str:
    """Verify and apply one webhook delivery; returns what happened (for the response and the logs)."""
    secret = get_settings().stripe_webhook_secret
    if not secret:
        raise Unavailable("Payments are not configured")
    try:
        event = stripe_sdk.Webhook.construct_event(payload, signature or "", secret)
    except (ValueError, stripe_sdk.SignatureVerificationError) as exc:
        raise InvalidSignature("The webhook signature is not valid") from exc
    if event.type not in COMPLETED_EVENTS:
        return "ignored"
    data: dict[str, Any] = event.data.object.to_dict()
    if data.get("payment_status") != "paid":
        return "unpaid"
    checkout = await session.get(CheckoutSession, data["id"], with_for_update=True)
    if checkout is None:
        log.warning("webhook for unknown checkout session %s ignored", data["id"])
        return "unknown_session"
    paid = data.get("amount_total")
    amount = checkout.amount_micros
    if paid is not None and paid * MICROS_PER_MINOR_UNIT != amount:
        log.error(
            "checkout %s paid %s minor units, asked %d micros; crediting what was paid",
            data["id"],
            paid,
            amount,
        )
        amount = paid * MICROS_PER_MINOR_UNIT
    entry = Entry(
        TransactionKind.topup,
        amount,
        f"stripe:{checkout.id}",
        reference=checkout.id,
        reason="Stripe Checkout",
    )
    booking = await ledger.book(session, checkout.owner_id, [entry])
    if checkout.status != "completed":
        checkout.status = "completed"
        checkout.completed_at = datetime.now(UTC)
    return "credited" if booking.created else "duplicate"
