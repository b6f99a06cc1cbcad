"""Postmark's outbound event webhooks (Delivery, Bounce, SpamComplaint) read into ProviderEvent.

The payload fields, the natural key of each type and the bounce types are in
docs/providers/postmark-events.md. Routing is on `RecordType`, never on `TypeCode` (Postmark's own
spam-complaint example carries a TypeCode that its bounce-type table gives to another type).
Field names are matched without regard to case: one official client reads `ServerId` where the
others read `ServerID`.
"""

from datetime import datetime

from integrations.email import EventRejected, ProviderEvent
from integrations.email import event_fields as checked
from integrations.email.event_fields import MAX_KEY, MAX_TEXT

RECORD_TYPES = ("Delivery", "Bounce", "SpamComplaint")
# Bounce records that say nothing about whether the message was delivered (an auto-reply, a
# subscription request, an address change, …): kept and shown, but not counted as bounced. Every
# other bounce type (hard, soft, transient, blocked, DNS error, …) is a message not delivered, as
# Postmark's own bounce rate counts them (docs/providers/postmark-events.md#bounce-rate).
# "Transient" (message delayed) is not a final outcome either: Postmark goes on trying, and the
# message may yet be delivered, which would count it twice.
NOT_A_FAILED_DELIVERY = frozenset({
    "AutoResponder", "Subscribe", "Unsubscribe", "AddressChange", "ChallengeVerification", "OpenRelayTest",
    "InboundError", "Transient",
})


def _fields(payload: object) -> dict:
    if not isinstance(payload, dict):
        raise EventRejected(f"The body must be a JSON object, not {_json_type(payload)}.")
    return {str(k).lower(): v for k, v in payload.items()}


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _text(fields: dict, name: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    return checked.text(fields.get(name.lower()), name, required=required, limit=limit)


def _short(fields: dict, name: str, limit: int, *, required: bool = False) -> str:
    return checked.short(fields.get(name.lower()), name, limit, required=required)


def _moment(fields: dict, name: str) -> datetime:
    return checked.moment(fields.get(name.lower()), name)


def _server_id(fields: dict) -> int | None:
    value = fields.get("serverid")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise EventRejected("ServerID must be a positive whole number.")
    return value


def parse_event(payload: object) -> ProviderEvent:
    fields = _fields(payload)
    record_type = fields.get("recordtype")
    if not isinstance(record_type, str) or not record_type:
        raise EventRejected("RecordType is missing.")
    if record_type not in RECORD_TYPES:
        shown = record_type[:40]
        raise EventRejected(f"RecordType {shown!r} is not one this receiver takes ({', '.join(RECORD_TYPES)}).")
    common = dict(server_id=_server_id(fields), message_id=_short(fields, "MessageID", 100),
                  message_stream=_short(fields, "MessageStream", 100), tag=_text(fields, "Tag", limit=200))
    if record_type == "Delivery":
        recipient = _short(fields, "Recipient", 320, required=True)
        if not common["message_id"]:
            raise EventRejected("MessageID is missing.")
        key = f"{common['message_id']}:{recipient.lower()}"
        if len(key) > MAX_KEY:  # lower() can lengthen some letters
            raise EventRejected("Recipient is too long.")
        return ProviderEvent(record_type=record_type, key=key,
                             recipient=recipient, occurred_at=_moment(fields, "DeliveredAt"),
                             details=_text(fields, "Details"), **common)
    bounce_id = fields.get("id")
    if isinstance(bounce_id, bool) or not isinstance(bounce_id, int) or not 0 <= bounce_id < 2**63:
        raise EventRejected("ID (the bounce id) must be a whole number.")
    bounce_type = _short(fields, "Type", 40)
    if record_type == "SpamComplaint":
        bounce_type = "SpamComplaint"
    elif not bounce_type:
        raise EventRejected("Type is missing.")
    return ProviderEvent(record_type=record_type, key=str(bounce_id), recipient=_short(fields, "Email", 320),
                         occurred_at=_moment(fields, "BouncedAt"), bounce_type=bounce_type,
                         undelivered=record_type == "Bounce" and bounce_type not in NOT_A_FAILED_DELIVERY,
                         description=_text(fields, "Description"), details=_text(fields, "Details"), **common)
