"""The event webhook: who may post, what is stored. No provider call, one INSERT per event.

The partition's webhook secret (`…-I-EmailWebhookSecret`) may hold several values separated by
commas or whitespace, like the encryption key: every value is accepted, the first is the one new
webhooks carry, so it is rotated with no event refused (`manage.py rotate_webhook_secret`).
The credential is the `Authorization: Bearer <secret>` header our webhooks are registered with, or
HTTP basic auth with the secret as the password (Postmark's own `HttpAuth`). It is compared in
constant time, over fixed-length digests, against every value; it is never logged.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from integrations.email import EventRejected, ProviderEvent
from integrations.email.ses.events import SesEvents, event_topic_arns
from tenants.models import EmailConfiguration, Partition

from .models import DeliveryEvent

log = logging.getLogger(__name__)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


@sensitive_variables("authorization", "given", "values", "decoded")
def credential_from(authorization: str) -> bytes | None:
    """The secret the request presents: a Bearer token, or a basic-auth password; None if neither."""
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        return given.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _, colon, password = decoded.partition(b":")
        return password if colon and password else None
    return None


@sensitive_variables("request", "given", "values", "value")
def authorized(partition: Partition, request) -> bool:
    """True when the request carries one of the partition's webhook secret values. The header is
    read here and kept in no caller's variable (a DEBUG error page shows every frame's variables)."""
    given = credential_from(request.headers.get("Authorization", ""))
    if given is None:
        return False
    values = partition.webhook_secrets()
    given_digest = _digest(given)
    matched = False
    for value in values:  # every value is compared: the time does not say which one matched
        matched |= hmac.compare_digest(given_digest, _digest(value.encode()))
    return matched


class BadBody(Exception):
    """The body is not an event; the message says why (the answer is 400)."""


@dataclass
class Stored:
    event: DeliveryEvent | None  # None: it was stored before (the provider sent it again)
    record_type: str
    matched: bool

    @property
    def duplicate(self) -> bool:
        return self.event is None


def parse_body(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("The body is not UTF-8 text.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadBody(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except RecursionError:
        raise BadBody("The body is nested too deeply to be an event.") from None
    except ValueError:  # e.g. an integer with more digits than Python converts
        raise BadBody("The body holds a number too long to be an event's.") from None


def store(partition: Partition, parse: Callable[[object], ProviderEvent], body: bytes) -> Stored:
    """Parse and keep one event: a lookup of its configuration, then one INSERT (which the unique
    natural key turns into nothing when the same event comes again)."""
    try:
        event = parse(parse_body(body))
    except EventRejected as exc:
        raise BadBody(str(exc)) from None
    configuration_id = None
    if event.server_id is not None:
        configuration_id = (EmailConfiguration.objects.filter(partition=partition, postmark_server_id=event.server_id)
                            .order_by("-pk").values_list("pk", flat=True).first())
    stored = _keep(partition, event, configuration_id)
    if configuration_id is None and not stored.duplicate:
        log.warning("Kept a %s event for server %s in %s unmatched: no configuration has that server.",
                    event.record_type, event.server_id, partition.name)
    return stored


def _keep(partition: Partition, event: ProviderEvent, configuration_id: int | None) -> Stored:
    """One INSERT; nothing when the partition already holds the event (its type and natural key)."""
    row = DeliveryEvent(
        partition=partition, configuration_id=configuration_id, record_type=event.record_type, key=event.key,
        server_id=event.server_id, message_id=event.message_id, recipient=event.recipient,
        occurred_at=event.occurred_at, bounce_type=event.bounce_type, undelivered=event.undelivered,
        description=event.description, details=event.details, message_stream=event.message_stream, tag=event.tag)
    try:
        with transaction.atomic():  # inside a caller's transaction, a savepoint keeps it usable
            row.save(force_insert=True)
    except IntegrityError:
        if not DeliveryEvent.objects.filter(partition=partition, record_type=event.record_type, key=event.key).exists():
            raise
        return Stored(None, event.record_type, configuration_id is not None)
    return Stored(row, event.record_type, configuration_id is not None)


# --- Amazon SES, through an SNS subscription (docs/providers/ses-events.md) ---------------------------

def ses_topics(partition: Partition) -> frozenset[str]:
    """The SNS topics this SES partition's configuration sets publish to (SES_EVENT_TOPIC_ARN per region)."""
    return event_topic_arns(settings.SES_EVENT_TOPIC_ARN, account_id=settings.SES_ACCOUNT_ID,
                            partition=partition.name, regions=partition.ses_region_list)


def ses_configuration_id(partition: Partition, from_domain: str) -> int | None:
    """The partition's configuration sending from `from_domain`, or from a domain above it (an envelope
    sender on the MAIL FROM subdomain, mail.<sending domain>): the nearest one."""
    labels = from_domain.split(".") if from_domain else []
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    found = dict(EmailConfiguration.objects.filter(partition=partition, sending_domain__in=candidates)
                 .values_list("sending_domain", "pk"))
    return next((found[name] for name in candidates if name in found), None)


def store_ses(partition: Partition, record: SesEvents) -> list[Stored]:
    """Keep each recipient's event of one SES record, matched to its configuration by sending domain:
    one INSERT per event, nothing for an event stored before."""
    configuration_id = ses_configuration_id(partition, record.from_domain)
    stored = [_keep(partition, event, configuration_id) for event in record.events]
    new = sum(not s.duplicate for s in stored)
    if configuration_id is None and new:
        log.warning("Kept %s %s event(s) from %s in %s unmatched: no configuration sends from that domain.",
                    new, record.record_type, record.from_domain or "an unnamed domain", partition.name)
    return stored
