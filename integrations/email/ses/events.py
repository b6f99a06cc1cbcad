"""Amazon SES's event-publishing records (Bounce, Complaint, Delivery), the JSON an SNS Notification
carries as its `Message`, read into ProviderEvents. Field names and meanings are in
docs/providers/ses-events.md (cited as #anchors).

One record can name several recipients (a delivery to three addresses, a bounce of two): it becomes
one event per recipient, keyed `<mail.messageId>:<recipient, lowercased>` (unique within the record
type, as the receiver stores it), so SNS sending the same notification again stores nothing new.
SES has no server id: the record says which domain sent the message (`from_domain`), and the receiver
finds the configuration by it.
"""

from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from integrations.email import EventRejected, ProviderEvent
from integrations.email import event_fields as checked
from integrations.email.event_fields import MAX_KEY, MAX_TEXT

# SES's eventType -> the project's record type (#event-types). `notificationType` is the same field's
# name when an identity's feedback notifications, not a configuration set, sent the record.
RECORD_TYPES = {"Delivery": "Delivery", "Bounce": "Bounce", "Complaint": "SpamComplaint"}
# Bounces that count as a message not delivered: every type SES publishes. Event publishing sends only
# hard bounces and soft bounces SES has stopped retrying (#bounce-types), so each is a final failure,
# unlike Postmark's "Transient" (a delay), which Postmark goes on retrying.
UNDELIVERED_BOUNCE_TYPES = frozenset({"Permanent", "Transient", "Undetermined"})
SUPPRESSED = "OnAccountSuppressionList"  # a complaint subtype: SES did not send at all (#complaints)
MAX_RECIPIENTS = 100  # more recipients than one message has; a record naming more is refused
# What DeliveryEvent's message_id column holds (the shared limits are in integrations.email.event_fields).
MAX_MESSAGE_ID = 100


@dataclass(frozen=True)
class SesEvents:
    """One SES record: its events (one per recipient) and the domain that sent the message ("" when the
    record does not say), by which the receiver finds the configuration (SES has no server id)."""

    events: tuple[ProviderEvent, ...]
    from_domain: str

    @property
    def record_type(self) -> str:
        return self.events[0].record_type


def _object(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise EventRejected(f"{path} must be a JSON object.")
    return value


def _text(parent: dict, name: str, path: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    return checked.text(parent.get(name), path, required=required, limit=limit)


def _short(parent: dict, name: str, path: str, limit: int) -> str:
    return checked.short(parent.get(name), path, limit, required=True)


def _moment(parent: dict, path: str) -> datetime:
    return checked.moment(parent.get("timestamp"), path)


def _list(parent: dict, name: str, path: str) -> list:
    value = parent.get(name)
    if not isinstance(value, list) or not value:
        raise EventRejected(f"{path} must be a list naming at least one recipient.")
    if len(value) > MAX_RECIPIENTS:
        raise EventRejected(f"{path} names more than {MAX_RECIPIENTS} recipients.")
    return value


def _recipients(kind: str, detail: dict, path: str) -> list[tuple[str, dict, str]]:
    """(address, its own object, that object's path) per recipient, each address once (#recipients)."""
    if kind == "Delivery":
        items = [({"address": r}, "address", f"{path}.recipients[{i}]")
                 for i, r in enumerate(_list(detail, "recipients", f"{path}.recipients"))]
    else:
        name = "bouncedRecipients" if kind == "Bounce" else "complainedRecipients"
        items = [(_object(r, f"{path}.{name}[{i}]"), "emailAddress", f"{path}.{name}[{i}]")
                 for i, r in enumerate(_list(detail, name, f"{path}.{name}"))]
    found: dict[str, tuple[str, dict, str]] = {}
    for item, field, where in items:
        address = _short(item, field, f"{where}.{field}" if field != "address" else where, 320)
        found.setdefault(address.lower(), (address, item, where))
    return list(found.values())


def _from_domain(mail: dict) -> str:
    """The sending domain: `mail.source`'s (the From address in SES's examples; the envelope sender per
    its field table, which with a custom MAIL FROM is a subdomain), else the `ses:from-domain` tag."""
    address = parseaddr(_text(mail, "source", "mail.source", required=True))[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not domain:
        tag = mail.get("tags", {}).get("ses:from-domain") if isinstance(mail.get("tags"), dict) else None
        domain = tag[0] if isinstance(tag, list) and tag and isinstance(tag[0], str) else ""
    domain = domain.strip().rstrip(".").lower()
    return domain if len(domain) <= 253 and all(c.isalnum() or c in ".-" for c in domain) else ""


def parse_event(payload: object) -> SesEvents:
    """An SES event-publishing record (a Notification's Message, parsed): one event per recipient."""
    record = _object(payload, "The SES event")
    kind = record.get("eventType", record.get("notificationType"))
    if kind not in RECORD_TYPES:
        shown = str(kind)[:40] if kind is not None else "missing"
        raise EventRejected(f"eventType {shown!r} is not one this receiver takes ({', '.join(RECORD_TYPES)}).")
    mail = _object(record.get("mail"), "mail")
    message_id = _short(mail, "messageId", "mail.messageId", MAX_MESSAGE_ID)
    path = kind.lower()
    detail = _object(record.get(path), path)
    occurred_at = _moment(detail, f"{path}.timestamp")
    common = dict(record_type=RECORD_TYPES[kind], server_id=None, message_id=message_id, occurred_at=occurred_at,
                  **_outcome(kind, detail, path))
    events = []
    for address, item, where in _recipients(kind, detail, path):
        key = f"{message_id}:{address.lower()}"
        if len(key) > MAX_KEY:  # lower() can lengthen some letters
            raise EventRejected(f"{where} is too long.")
        if kind == "Bounce":  # the receiving server's answer, per recipient (#recipients)
            common["details"] = _text(item, "diagnosticCode", f"{where}.diagnosticCode")
        events.append(ProviderEvent(key=key, recipient=address, **common))
    return SesEvents(tuple(events), _from_domain(mail))


def _outcome(kind: str, detail: dict, path: str) -> dict:
    """What the record says about the outcome, in ProviderEvent's fields (#bounce-types, #complaints)."""
    if kind == "Delivery":
        return {"details": _text(detail, "smtpResponse", f"{path}.smtpResponse")}
    if kind == "Complaint":
        subtype = _text(detail, "complaintSubType", f"{path}.complaintSubType", limit=40)
        return {"bounce_type": "SpamComplaint", "details": _text(detail, "complaintFeedbackType",
                                                                 f"{path}.complaintFeedbackType", limit=40),
                "description": ("SES did not send it: the address is on the account's suppression list."
                                if subtype == SUPPRESSED else "")}
    bounce_type = _short(detail, "bounceType", f"{path}.bounceType", 20)
    subtype = _text(detail, "bounceSubType", f"{path}.bounceSubType", limit=10_000)
    shown = f"{bounce_type}/{subtype}" if subtype else bounce_type
    if len(shown) > 40:
        raise EventRejected(f"{path}.bounceSubType is longer than {39 - len(bounce_type)} characters.")
    return {"bounce_type": shown, "undelivered": bounce_type in UNDELIVERED_BOUNCE_TYPES}


def event_topic_arns(template: str, *, account_id: str, partition: str, regions: tuple[str, ...]) -> frozenset[str]:
    """The SNS topics a partition's configuration sets publish to: SES_EVENT_TOPIC_ARN with `{region}`,
    `{account}` and `{partition}` filled in, one per region; none when no template is set, or it names
    `{account}` and no account is known (the rule provisioning follows when it sets up the destinations)."""
    if not template or ("{account}" in template and not account_id):
        return frozenset()
    return frozenset(template.format(region=region, account=account_id, partition=partition) for region in regions)
