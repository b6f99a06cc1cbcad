"""Records and request checks of the Postmark simulator (postmark_simulator.py): the objects it
stores, in the shapes of docs/providers/postmark.md, and the validations Postmark applies."""

import base64
import copy
import re
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RETURN_PATH_TARGET = "pm.mtasv.net"
ACCOUNT, SERVER = "account", "server"  # which token an endpoint takes
ROUTES = [
    # (method, path regex, token kind, handler name); Postmark's paths are case-insensitive.
    ("GET", r"/servers", ACCOUNT, "_list_servers"),
    ("POST", r"/servers", ACCOUNT, "_create_server"),
    ("GET", r"/servers/(\d+)", ACCOUNT, "_get_server"),
    ("DELETE", r"/servers/(\d+)", ACCOUNT, "_delete_server"),
    ("GET", r"/domains", ACCOUNT, "_list_domains"),
    ("POST", r"/domains", ACCOUNT, "_create_domain"),
    ("GET", r"/domains/(\d+)", ACCOUNT, "_get_domain"),
    ("DELETE", r"/domains/(\d+)", ACCOUNT, "_delete_domain"),
    ("PUT", r"/domains/(\d+)/verifyDkim", ACCOUNT, "_verify_dkim"),
    ("PUT", r"/domains/(\d+)/verifyReturnPath", ACCOUNT, "_verify_return_path"),
    ("POST", r"/domains/(\d+)/rotatedkim", ACCOUNT, "_rotate_dkim"),
    ("GET", r"/webhooks", SERVER, "_list_webhooks"),
    ("POST", r"/webhooks", SERVER, "_create_webhook"),
    ("GET", r"/webhooks/(\d+)", SERVER, "_get_webhook"),
    ("PUT", r"/webhooks/(\d+)", SERVER, "_edit_webhook"),
    ("DELETE", r"/webhooks/(\d+)", SERVER, "_delete_webhook"),
    ("POST", r"/email", SERVER, "_send_email"),
    ("POST", r"/__simulator/faults", None, "_control_fault"),
    ("POST", r"/__simulator/reset", None, "_control_reset"),
    ("GET", r"/__simulator/state", None, "_control_state"),
]
STREAMS = ("outbound",)  # every server's default transactional stream; the only one simulated


class ApiError(Exception):
    def __init__(self, status: int, error_code: int, message: str):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def invalid(error_code: int, message: str):
    raise ApiError(422, error_code, message)


def paging(query, *, error_code, max_count):
    try:
        count, offset = int(query["count"]), int(query["offset"])
    except (KeyError, ValueError):
        invalid(error_code, "The 'count' and 'offset' query parameters are required integers.")
    if not 0 < count <= max_count or offset < 0:
        invalid(error_code, f"'count' must be between 1 and {max_count} and 'offset' must not be negative.")
    return count, offset


def check_url(url):
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        invalid(606, "The webhook URL is missing or invalid.")


def check_stream(stream):
    if stream not in STREAMS:
        invalid(1235, f"The message stream '{stream}' was not found.")


def no_triggers():
    return {"Open": {"Enabled": False, "PostFirstOpenOnly": False}, "Click": {"Enabled": False},
            "Delivery": {"Enabled": False}, "Bounce": {"Enabled": False, "IncludeContent": False},
            "SpamComplaint": {"Enabled": False, "IncludeContent": False}, "SubscriptionChange": {"Enabled": False}}


def merge_triggers(current, given):
    merged = copy.deepcopy(current)
    for name, settings in (given or {}).items():
        if name in merged and isinstance(settings, dict):
            merged[name].update({k: v for k, v in settings.items() if k in merged[name]})
    return merged


def public_copy(record):
    """A copy without the simulator's own bookkeeping keys (Account, ServerID on webhooks, when a
    DKIM key was revoked)."""
    return {k: copy.deepcopy(v) for k, v in record.items() if k not in ("Account", "ServerID", "RevokedAt")}


def new_server(server_id, name, delivery_type, color):
    inbound_hash = uuid.uuid4().hex
    return {
        "ID": server_id, "Name": name, "ApiTokens": [str(uuid.uuid4())],
        "ServerLink": f"https://account.postmarkapp.com/servers/{server_id}/streams",
        "Color": color, "SmtpApiActivated": True, "RawEmailEnabled": False, "DeliveryType": delivery_type,
        "InboundAddress": f"{inbound_hash}@inbound.postmarkapp.com", "InboundHookUrl": "", "BounceHookUrl": "",
        "OpenHookUrl": "", "DeliveryHookUrl": "", "ClickHookUrl": "", "PostFirstOpenOnly": False,
        "InboundDomain": "", "InboundHash": inbound_hash, "InboundSpamThreshold": 0, "TrackOpens": False,
        "TrackLinks": "None", "IncludeBounceContentInHook": False, "EnableSmtpApiErrorHooks": False,
    }


def new_domain(domain_id, name, return_path, selector, dkim_value, return_path_target=RETURN_PATH_TARGET):
    return {
        "ID": domain_id, "Name": name,
        "SPFVerified": False, "SPFHost": name, "SPFTextValue": "v=spf1 a mx include:spf.mtasv.net ~all",
        "DKIMVerified": False, "WeakDKIM": False, "DKIMHost": "", "DKIMTextValue": "",
        "DKIMPendingHost": f"{selector}._domainkey.{name}", "DKIMPendingTextValue": dkim_value,
        "DKIMRevokedHost": "", "DKIMRevokedTextValue": "", "SafeToRemoveRevokedKeyFromDNS": False,
        "DKIMUpdateStatus": "Pending", "ReturnPathDomain": return_path, "ReturnPathDomainVerified": False,
        "ReturnPathDomainCNAMEValue": return_path_target,
    }


def new_dkim_value(bits: int) -> str:
    """A fresh DKIM public key in the TXT form Postmark gives ("k=rsa; p=<base64 SPKI>")."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "k=rsa; p=" + base64.b64encode(der).decode()
