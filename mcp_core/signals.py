"""Signals through which servers tell the rest of the project what happened, without importing
whoever listens (no server imports another, and none imports a workflow app).

Every signal is sent inside the sender's transaction, once the change is written; a receiver
that does slow work (a message, an upstream call) defers it with `transaction.on_commit`, so a
rolled-back change never reaches a customer. Receivers must not raise: `send_robust` is used, and
a receiver's error is logged and never undoes the sender's change.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# An appointment was booked, moved, cancelled or confirmed.
# kwargs: appointment_id (int), company_id (int), change ("booked" | "rescheduled" | "cancelled" |
# "confirmed"), source ("calcom_webhook" | "calcom_operation" | "admin" | "reply").
appointment_changed = Signal()

# A customer's message arrived (recorded once, by its provider id).
# kwargs: company_id, service ("messaging"), message_id (the service's record id), channel
# ("sms" | "whatsapp" | "email"), sender_address (the customer's E.164 number or address), body.
inbound_message_received = Signal()

# An outbound message's delivery status or price changed (a provider's status callback).
# kwargs: company_id, service ("messaging" | "email"), message_id, status, price (Decimal or
# None), price_unit ("" when unknown).
outbound_message_updated = Signal()

APPOINTMENT_CHANGES = ("booked", "rescheduled", "cancelled", "confirmed")


def send(signal: Signal, sender: str, **kwargs) -> None:
    """Send to every receiver; a failing receiver is logged, never raised into the sender."""
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "receiver %s of %s failed: %s",
                getattr(receiver, "__qualname__", receiver),
                sender,
                result,
                exc_info=(type(result), result, result.__traceback__),
            )


def appointment(appointment_id: int, company_id: int, change: str, source: str) -> None:
    """Announce one appointment change (see `appointment_changed`)."""
    if change not in APPOINTMENT_CHANGES:
        raise ValueError(f"unknown appointment change {change!r}")
    send(
        appointment_changed,
        sender=source,
        appointment_id=appointment_id,
        company_id=company_id,
        change=change,
        source=source,
    )
