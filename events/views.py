"""The provider's event webhook: `POST /webhooks/<provider>/<partition>/`, at exactly the URL the
provisioning workflow registers (provisioning.steps.webhook_url). No login and no CSRF here only:
the caller is the provider, which proves itself with the partition's webhook secret.

Answers (JSON, each with a sentence): 200 stored or already stored; 401 missing or wrong secret;
400 a body that is not an event (why); 413 a body over WEBHOOK_MAX_BODY_BYTES; 404 an unknown
partition; 503 a partition whose webhook secret is not configured (the provider tries again later).

Amazon SES posts through an SNS HTTPS subscription to `POST /webhooks/ses/<partition>/` (`ses_webhook`),
which answers the same way and also checks SNS's signature and topic (docs/providers/ses-events.md).
"""

import base64
import binascii
import logging
import re

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ardamail_admin import metrics
from integrations.email import EventRejected
from integrations.email.postmark.events import parse_event as postmark_event
from integrations.email.ses import events as ses_events
from integrations.email.ses import sns
from integrations.errors import ProviderError
from tenants import secrets
from tenants.models import EmailProviderName, Partition
from tenants.partitions import find_partition

from .dmarc_reports import import_file, mailed_trust
from .models import ReportSource
from .receiver import BadBody, authorized, parse_body, ses_topics, store, store_ses

log = logging.getLogger(__name__)
PARSERS = {"postmark": postmark_event}  # the URL's provider -> its package's webhook parser
MAX_ATTACHMENTS = 10  # report files taken from one inbound message
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _answer(status: int, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"message": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ardamail webhooks"'
    return response


def _admit(request, provider: str, partition: Partition, limit: int) -> JsonResponse | bytes:
    """The checks every webhook of ours makes, in order: the partition's secret, then the body's
    size. The body, or the answer that refuses it (nothing stored)."""
    try:
        allowed = authorized(partition, request)
    except secrets.MissingSecret as exc:
        log.error("Refused a %s webhook for %s: %s", provider, partition.name, exc)
        return _answer(503, "This partition's webhook secret is not configured; nothing was stored.")
    if not allowed:
        log.warning("Refused a %s webhook for %s: the credential is %s.", provider, partition.name,
                    "wrong" if request.headers.get("Authorization") else "missing")
        return _answer(401, "The webhook secret is missing or wrong; nothing was stored.")
    length = request.META.get("CONTENT_LENGTH") or ""
    if not (length.isascii() and length.isdigit()):
        return _answer(411, "Send the body with a Content-Length; nothing was stored.")
    if int(length) > limit:
        return _answer(413, f"The body is larger than {limit} bytes; nothing was stored.")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _answer(413, f"The body is larger than {limit} bytes; nothing was stored.")
    return body


@csrf_exempt
@login_not_required
@require_POST
def provider_webhook(request, provider: str, partition: str):
    parse = PARSERS.get(provider)
    found = find_partition(partition) if parse else None
    if found is None:
        return _answer(404, "There is no such webhook; nothing was stored.")
    body = _admit(request, provider, found, settings.WEBHOOK_MAX_BODY_BYTES)
    if isinstance(body, JsonResponse):
        metrics.WEBHOOK_EVENTS.labels(provider, "unknown", str(body.status_code)).inc()  # refused: 401, 413, …
        return body
    try:
        stored = store(found, parse, body)
    except BadBody as exc:
        metrics.WEBHOOK_EVENTS.labels(provider, "unknown", "bad_body").inc()
        return _answer(400, f"{exc} Nothing was stored.")
    metrics.WEBHOOK_EVENTS.labels(provider, stored.record_type, "duplicate" if stored.duplicate else "stored").inc()
    if stored.duplicate:
        return _answer(200, f"This {stored.record_type} event was stored before; nothing changed.", stored=False)
    return _answer(200, f"Stored the {stored.record_type} event.", stored=True, matched=stored.matched)


@csrf_exempt
@login_not_required
@require_POST
def ses_webhook(request, partition: str):
    """Amazon SES's events from an SNS HTTPS subscription, subscribed as
    `https://ses:<webhook secret>@<dashboard>/webhooks/ses/<partition>/`: the secret (basic auth), then
    SNS's signature and topic. A confirmation for our topic is confirmed; a notification's events stored."""
    found = find_partition(partition)
    if found is None or found.email_provider != EmailProviderName.SES:
        return _answer(404, "There is no such webhook; nothing was stored.")
    body = _admit(request, "ses", found, settings.WEBHOOK_MAX_BODY_BYTES)
    if isinstance(body, JsonResponse):
        metrics.WEBHOOK_EVENTS.labels("ses", "unknown", str(body.status_code)).inc()
        if body.status_code == 401:  # SNS sends the URL's credentials only when challenged for Basic
            body["WWW-Authenticate"] = 'Basic realm="ardamail webhooks"'
        return body
    client = sns.SnsClient.default()
    try:
        message = client.verify(parse_body(body), header_type=request.headers.get(sns.MESSAGE_TYPE_HEADER),
                                expected_topic=lambda arn: arn in ses_topics(found))
        if message.type == sns.SUBSCRIPTION_CONFIRMATION:
            client.confirm(message)
    except (BadBody, sns.SnsRejected) as exc:
        status = getattr(exc, "status", 400)
        metrics.WEBHOOK_EVENTS.labels("ses", "unknown", "bad_body" if status == 400 else str(status)).inc()
        log.warning("Refused an SNS message for %s: %s", found.name, exc)
        return _answer(status, f"{exc} Nothing was stored.")
    except ProviderError as exc:  # the certificate or the confirmation; SNS retries a 5xx (ses-events.md#retries)
        log.warning("Could not check or confirm an SNS message for %s: %s", found.name, exc)
        return _answer(503 if exc.transient else 502, f"{exc} Nothing was stored; Amazon SNS will try again.")
    if message.type != sns.NOTIFICATION:
        return _ses_subscription(found, message)
    return _ses_notification(found, message)


def _ses_subscription(partition: Partition, message: sns.SnsMessage) -> JsonResponse:
    if message.type == sns.SUBSCRIPTION_CONFIRMATION:
        log.info("Confirmed the SNS subscription of %s to %s.", partition.name, message.topic_arn)
        return _answer(200, f"Confirmed the subscription to {message.topic_arn}.", confirmed=True)
    log.warning("SNS says %s is no longer subscribed to %s.", partition.name, message.topic_arn)
    return _answer(200, f"Noted: this endpoint is no longer subscribed to {message.topic_arn}.", confirmed=False)


def _ses_notification(partition: Partition, message: sns.SnsMessage) -> JsonResponse:
    try:
        record = ses_events.parse_event(parse_body(message.message.encode("utf-8", "surrogatepass")))
    except (BadBody, EventRejected) as exc:
        metrics.WEBHOOK_EVENTS.labels("ses", "unknown", "bad_body").inc()
        return _answer(400, f"The notification's Message is not an SES event: {exc} Nothing was stored.")
    stored = store_ses(partition, record)
    new = sum(not s.duplicate for s in stored)
    metrics.WEBHOOK_EVENTS.labels("ses", record.record_type, "stored").inc(new)
    metrics.WEBHOOK_EVENTS.labels("ses", record.record_type, "duplicate").inc(len(stored) - new)
    if not new:
        return _answer(200, f"These {record.record_type} events were stored before; nothing changed.", stored=0,
                       duplicates=len(stored))
    return _answer(200, f"Stored {new} {record.record_type} event{'s' if new != 1 else ''}.", stored=new,
                   duplicates=len(stored) - new, matched=stored[0].matched)


@csrf_exempt
@login_not_required
@require_POST
def postmark_inbound(request, partition: str):
    """Postmark's inbound webhook for the partition's report address: each attachment is a report
    file, imported like any other (events.dmarc_reports). Postmark's inbound hook takes basic auth in
    its URL (`https://postmark:<secret>@host/webhooks/postmark-inbound/<partition>/`).

    A file that is not a valid report is answered 200 with its refusal, not 4xx: Postmark would
    retry it for hours and it would stay as bad. The refusal is logged and said in the answer."""
    found = find_partition(partition)
    if found is None:
        return _answer(404, "There is no such webhook; nothing was stored.")
    body = _admit(request, "postmark-inbound", found, settings.DMARC_INBOUND_MAX_BYTES)
    if isinstance(body, JsonResponse):
        return body
    try:
        message = parse_body(body)
    except BadBody as exc:
        return _answer(400, f"{exc} Nothing was stored.")
    if not isinstance(message, dict):
        return _answer(400, "The body must be a JSON object (Postmark's inbound message). Nothing was stored.")
    attachments = message.get("Attachments") or []
    if not isinstance(attachments, list):
        return _answer(400, "Attachments must be a list. Nothing was stored.")
    results = []
    sender = _storable(str((message.get("FromFull") or {}).get("Email") if isinstance(message.get("FromFull"), dict)
                           else message.get("From") or ""))[:254].strip().lower()
    trust = mailed_trust(sender, message.get("Headers"))
    for position, attachment in enumerate(attachments, start=1):
        if position > MAX_ATTACHMENTS:
            results.append({"name": f"attachment {position}", "status": "refused",
                            "message": f"attachment {position}: refused, nothing stored: a message carries at most "
                                       f"{MAX_ATTACHMENTS} report files."})
            continue
        name, data, problem = _attachment(attachment, position)
        if problem:
            results.append({"name": name, "status": "refused", "message": f"{name}: refused, nothing stored: {problem}"})
            continue
        for outcome in import_file(name, data, source=ReportSource.INBOUND, actor_name=f"inbound:{sender}"[:150],
                                   trust=trust):
            results.append({"name": name, "status": outcome.status, "message": outcome.message})
    for result in results:
        if result["status"] == "refused":
            log.warning("Inbound report for %s: %s", found.name, result["message"])
    stored = sum(r["status"] == "stored" for r in results)
    if not results:
        return _answer(200, "The message has no attachment; there was no report to store.", results=[])
    return _answer(200, f"{stored} of {len(results)} reports stored.", results=results)


def _storable(text: str) -> str:
    """Text from the message as a database stores it: JSON may carry NUL ("\\u0000", which PostgreSQL
    text refuses) and lone surrogates ("\\ud800", which no UTF-8 column takes); both become U+FFFD."""
    return UNSTORABLE.sub("\ufffd", text)


def _attachment(attachment: object, position: int) -> tuple[str, bytes, str]:
    """(name, bytes, problem): Postmark sends each attachment's content in base64."""
    if not isinstance(attachment, dict):
        return f"attachment {position}", b"", "it is not an object."
    name = attachment.get("Name")
    name = _storable(name)[:200] if isinstance(name, str) and name.strip() else f"attachment {position}"
    content = attachment.get("Content")
    if not isinstance(content, str) or not content:
        return name, b"", "it has no Content."
    try:
        return name, base64.b64decode("".join(content.split()), validate=True), ""
    except (binascii.Error, ValueError):
        return name, b"", "its Content is not base64."
