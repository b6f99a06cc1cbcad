"""The provider's event webhook: `POST /webhooks/<provider>/<partition>/`, at exactly the URL the
provisioning workflow registers (provisioning.steps.webhook_url). No login and no CSRF here only:
the caller is the provider, which proves itself with the partition's webhook secret.

Answers (JSON, each with a sentence): 200 stored or already stored; 401 missing or wrong secret;
400 a body that is not an event (why); 413 a body over WEBHOOK_MAX_BODY_BYTES; 404 an unknown
partition; 503 a partition whose webhook secret is not configured (the provider tries again later).
"""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations.email.postmark.events import parse_event as postmark_event
from tenants import secrets
from tenants.models import Partition
from tenants.validation import validate_partition_name

from .receiver import BadBody, authorized, store

log = logging.getLogger(__name__)
PARSERS = {"postmark": postmark_event}  # the URL's provider -> its package's webhook parser


def _answer(status: int, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"message": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ardamail webhooks"'
    return response


def _partition(name: str) -> Partition | None:
    try:
        validate_partition_name(name)
    except Exception:
        return None
    return Partition.objects.filter(name=name).first()


@csrf_exempt
@login_not_required
@require_POST
def provider_webhook(request, provider: str, partition: str):
    parse = PARSERS.get(provider)
    found = _partition(partition) if parse else None
    if found is None:
        return _answer(404, "There is no such webhook; nothing was stored.")
    try:
        allowed = authorized(found, request)
    except secrets.MissingSecret as exc:
        log.error("Refused a %s webhook for %s: %s", provider, found.name, exc)
        return _answer(503, "This partition's webhook secret is not configured; nothing was stored.")
    if not allowed:
        log.warning("Refused a %s webhook for %s: the credential is %s.", provider, found.name,
                    "wrong" if request.headers.get("Authorization") else "missing")
        return _answer(401, "The webhook secret is missing or wrong; nothing was stored.")
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if not (length.isascii() and length.isdigit()):
        return _answer(411, "Send the body with a Content-Length; nothing was stored.")
    if int(length) > limit:
        return _answer(413, f"The body is larger than {limit} bytes; nothing was stored.")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _answer(413, f"The body is larger than {limit} bytes; nothing was stored.")
    try:
        stored = store(found, parse, body)
    except BadBody as exc:
        return _answer(400, f"{exc} Nothing was stored.")
    if stored.duplicate:
        return _answer(200, f"This {stored.record_type} event was stored before; nothing changed.", stored=False)
    return _answer(200, f"Stored the {stored.record_type} event.", stored=True, matched=stored.matched)
