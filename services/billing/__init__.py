"""Billing: prices, the ledger, holds and their settlement, top-ups (admin and Stripe), reconciliation.

Every movement of money is a ledger entry (``models.Transaction``) with a unique idempotency key,
booked in the same database transaction as the update of the owner's locked ``balances`` row.
"""
