"""An Amazon SES v2 stand-in for local mode and tests: a WSGI app answering the `sesv2` REST-JSON calls
boto3 makes, checked against botocore's own model of the API (the model is the contract).

Simulated, each region on its own (the region is the SigV4 credential scope's; an identity in
us-east-1 has nothing to do with one in us-west-2, and gets other DKIM tokens):
CreateEmailIdentity, GetEmailIdentity, DeleteEmailIdentity, PutEmailIdentityMailFromAttributes,
PutEmailIdentityConfigurationSetAttributes, CreateConfigurationSet, GetConfigurationSet,
DeleteConfigurationSet, CreateConfigurationSetEventDestination, GetConfigurationSetEventDestinations,
UpdateConfigurationSetEventDestination, CreateTenant, GetTenant, CreateTenantResourceAssociation, SendEmail.

- A request without a SigV4 Authorization header gets AWS's 403 MissingAuthenticationTokenException;
  the signature itself is not checked.
- Every request is checked against the model: required members, types, lengths, enum values and
  patterns (BadRequestException in AWS's "1 validation error detected" wording). boto checks only
  required members, types and minimums before sending.
- Domain identities use Easy DKIM, three random tokens a region. DKIM, and with it the identity,
  turns SUCCESS at the first GetEmailIdentity or SendEmail after `dns_lookup` shows all three CNAMEs
  `<token>._domainkey.<domain>` -> `<token>.dkim.amazonses.com`; FAILED (ErrorType TYPE_NOT_FOUND) at
  once in a region of `fail_dkim_regions`, or once 72 hours pass on `clock` without them. A MAIL FROM
  domain turns SUCCESS once it holds exactly one MX, to an SES feedback host (`10
  feedback-smtp.<region>.amazonses.com`, any region's: one MAIL FROM domain serves identities in
  several regions, docs/providers/ses.md#mail-from-in-several-regions; several MX values fail the
  setup, #mail-from-one-mx) and an SPF TXT with include:amazonses.com; FAILED after 72 hours.
  SUCCESS and FAILED then stay: SES's later re-checks are not simulated.
- SendEmail takes Simple content from an address whose domain, or a parent domain, is a verified
  identity in the region, and records it in state() with, per recipient, what the SES mailbox
  simulator would report (success@/bounce@/complaint@simulator.amazonses.com); "SEND" for others.

Not simulated: email-address identities, BYODKIM and DKIM origins other than AWS_SES, Raw and
Template content, sending authorization, delivery and event publishing (nothing reaches SNS or
EventBridge), the sandbox, quotas and throttling, DKIM signing, DNS caching delays. Every other
operation, and any unknown path, is a 404 UnknownOperationException.
"""

import copy
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import cache
from http.client import responses

import botocore.session
from botocore import xform_name

from .postmark_simulator import DOMAIN_NAME

SIMULATED = frozenset({
    "CreateEmailIdentity", "GetEmailIdentity", "DeleteEmailIdentity", "PutEmailIdentityMailFromAttributes",
    "PutEmailIdentityConfigurationSetAttributes", "CreateConfigurationSet", "GetConfigurationSet",
    "DeleteConfigurationSet", "CreateConfigurationSetEventDestination", "GetConfigurationSetEventDestinations",
    "UpdateConfigurationSetEventDestination", "CreateTenant", "GetTenant", "CreateTenantResourceAssociation",
    "SendEmail", "GetAccount",
})
# GetAccount's answer: an account out of the sandbox, sending, in good standing (what local mode is).
LOCAL_QUOTA = {"Max24HourSend": 50000.0, "MaxSendRate": 14.0}
EASY_DKIM_ZONE = "dkim.amazonses.com"  # DkimAttributes.SigningHostedZone
TOKEN_ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_KEY_LENGTH = "RSA_2048_BIT"  # what new Easy DKIM identities get unless told (assumed, not confirmed)
# SES stops looking for DKIM CNAMEs (and MAIL FROM records) it has not found after 72 hours and fails them.
VERIFICATION_WINDOW_SECONDS = 72 * 3600
# Configuration set and tenant names: "up to 64 alphanumeric characters, hyphens and underscores" (the
# model's documentation); event destination names are held to the same rule (SES v1's documented one).
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
FEEDBACK_MX = re.compile(r"10 feedback-smtp\.([a-z0-9-]+)\.amazonses\.com")
MAX_RECIPIENTS = 50  # To + Cc + Bcc of one message
# The mailbox simulator's addresses (a "+label" is allowed) and the event each one causes.
MAILBOX_SIMULATOR = "simulator.amazonses.com"
SIMULATOR_OUTCOMES = {"success": "DELIVERY", "bounce": "BOUNCE", "complaint": "COMPLAINT", "ooto": "DELIVERY",
                      "suppressionlist": "BOUNCE"}
# The JSON types each kind of shape travels as (blobs base64-encoded, timestamps as epoch seconds).
JSON_TYPES = {"structure": dict, "map": dict, "list": list, "string": str, "blob": str, "boolean": bool, "integer": int,
              "long": int, "double": (int, float), "float": (int, float), "timestamp": (int, float, str)}
CREDENTIAL = re.compile(r"Credential=[^/\s,]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


class SesError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(code: str, message: str) -> SesError:
    """An error the model declares, with the HTTP status the model gives it."""
    return SesError(_model().shape_for(code).metadata["error"]["httpStatusCode"], code, message)


def bad_request(message: str) -> SesError:
    return error("BadRequestException", message)


@cache
def _model():
    return botocore.session.get_session().get_service_model("sesv2")


@cache
def _routes() -> list:
    """(method, path pattern, operation) for every operation in the model, fixed paths first."""
    routes = []
    for name in _model().operation_names:
        http = _model().operation_model(name).http
        segments = http["requestUri"].split("?")[0].strip("/").split("/")
        parts = [f"(?P<{m[1]}>[^/]+)" if (m := re.fullmatch(r"\{(\w+)\+?\}", s)) else re.escape(s) for s in segments]
        pattern = re.compile("/" + "/".join(parts))
        routes.append((sum(s.startswith("{") for s in segments), http["method"], pattern, name))
    return [route[1:] for route in sorted(routes, key=lambda route: route[0])]


def _invalid(value, path: str, rule: str, shape=None) -> SesError:
    shown = "null" if value is None else "***" if shape is not None and shape.metadata.get("sensitive") else repr(value)
    return bad_request(f"1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: {rule}")


def _validate(shape, value, path: str = "") -> None:
    """Check a value against its shape in the model: the constraints AWS checks before the operation runs."""
    meta, kind = shape.metadata, shape.type_name
    if not isinstance(value, JSON_TYPES.get(kind, object)) or (kind in ("integer", "long") and isinstance(value, bool)):
        raise _invalid(value, path, f"Member must be of type {kind}", shape)
    if kind == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                raise _invalid(None, _join(path, name), "Member must not be null")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _validate(member, value[name], _join(path, name))
    elif kind == "list":
        for i, item in enumerate(value):
            _validate(shape.member, item, f"{path}.{i + 1}.member")
    elif kind == "map":
        for key, item in value.items():
            _validate(shape.value, item, f"{path}.{key}")
    measured = len(value) if kind in ("string", "list", "blob") else value if kind in ("integer", "long") else None
    what = "length" if kind in ("string", "list", "blob") else "value"
    if measured is not None and "min" in meta and measured < meta["min"]:
        raise _invalid(value, path, f"Member must have {what} greater than or equal to {meta['min']}", shape)
    if measured is not None and "max" in meta and measured > meta["max"]:
        raise _invalid(value, path, f"Member must have {what} less than or equal to {meta['max']}", shape)
    if kind == "string" and meta.get("enum") and value not in meta["enum"]:
        raise _invalid(value, path, f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]", shape)
    if kind == "string" and "pattern" in meta and not re.search(meta["pattern"], value):
        raise _invalid(value, path, f"Member must satisfy regular expression pattern: {meta['pattern']}", shape)


def _join(path: str, name: str) -> str:
    name = name[0].lower() + name[1:]  # AWS names members in camelCase in these messages
    return f"{path}.{name}" if path else name


def _check_name(name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise bad_request(f"Invalid {what} name {name!r}: it may have up to 64 letters, digits, hyphens (-) and "
                          "underscores (_) only.")


def _present(**values) -> dict:
    return {key: value for key, value in values.items() if value is not None}


class SesSimulator:
    def __init__(
        self,
        dns_lookup: Callable[[str, str], list[str]] | None = None,
        account_id: str = "123456789012",
        fail_dkim_regions: tuple[str, ...] | list[str] = (),
        *,
        clock: Callable[[], datetime] | None = None,
    ):
        self._dns_lookup = dns_lookup or (lambda fqdn, rtype: [])
        self.account_id = account_id
        self.fail_dkim_regions = frozenset(fail_dkim_regions)  # DKIM fails there, to show one region failing
        self._clock = clock or (lambda: datetime.now(UTC))
        self.timeout_by_sleeping = False  # set by localdev.serving.serve(); nothing here sleeps
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._regions: dict[str, dict] = {}
            self.calls: list[tuple[str, str]] = []  # (region, operation)

    def state(self) -> dict:
        """region -> identities, configuration_sets, tenants, associations, sent (JSON-able, for tests)."""
        with self._lock:
            return copy.deepcopy(self._regions)

    def dump(self) -> dict:
        """What local mode saves between runs: everything (there are no secrets in it)."""
        return self.state()

    def restore(self, saved: dict) -> None:
        with self._lock:
            self._regions = copy.deepcopy(saved)

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
        try:
            status, body = 200, self._handle(environ)
        except SesError as exc:
            # botocore's rest-json parser takes the code from this header and the text from "message".
            status, body = exc.status, {"message": exc.message}
            headers.append(("x-amzn-ErrorType", exc.code))
        payload = json.dumps(body).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {responses.get(status, 'Unknown')}", headers)
        return [payload]

    def _handle(self, environ) -> dict:
        region = self._region(environ)  # AWS refuses an unsigned request before it looks at the path
        method = environ["REQUEST_METHOD"].upper()
        path = (environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
        name, match = self._operation(method, path)
        operation = _model().operation_model(name)
        params = {**self._read_json(environ), **match.groupdict()}  # the model puts members in the body or the path
        _validate(operation.input_shape, params)
        with self._lock:
            self.calls.append((region, name))
            state = self._regions.setdefault(region, {"identities": {}, "configuration_sets": {}, "tenants": {},
                                                      "associations": [], "sent": []})
            return copy.deepcopy(getattr(self, "_" + xform_name(name))(region, state, params))

    def _region(self, environ) -> str:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise SesError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        match = CREDENTIAL.search(header) if header.startswith("AWS4-HMAC-SHA256 ") else None
        if match is None:
            raise SesError(403, "IncompleteSignatureException",
                           "Authorization header requires 'Credential' parameter (AWS4-HMAC-SHA256 Credential=...).")
        if match[2] != "ses":
            raise SesError(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'ses'.")
        return match[1]

    def _operation(self, method: str, path: str):
        for route_method, pattern, name in _routes():
            match = pattern.fullmatch(path)
            if match and route_method == method:
                if name not in SIMULATED:
                    raise SesError(404, "UnknownOperationException",
                                   f"{name} is not simulated by the local SES simulator.")
                return name, match
        # SES answers an unknown operation 404 UnknownOperationException (github.com/soto-project/soto/issues/580).
        raise SesError(404, "UnknownOperationException", f"No SES v2 operation is {method} {path}.")

    def _read_json(self, environ) -> dict:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SesError(400, "SerializationException", "The request body is not a JSON object.")
        return body

    # -- identities ---------------------------------------------------------------------------

    def _create_email_identity(self, region, state, params):
        name = params["EmailIdentity"].lower()
        if "@" in name:
            raise bad_request("Email address identities are not simulated by the local SES simulator; "
                              "create a domain identity.")
        if not DOMAIN_NAME.match(name):
            raise bad_request(f"Invalid domain name {name}.")  # SES's wording not confirmed
        key_length = self._easy_dkim_key_length(params.get("DkimSigningAttributes") or {})
        if name in state["identities"]:
            raise error("AlreadyExistsException", f"Email identity {name} already exists.")
        if params.get("ConfigurationSetName"):
            self._configuration_set(state, params["ConfigurationSetName"])
        now = self._now()
        identity = {"EmailIdentity": name, "Tokens": [self._token() for _ in range(3)], "KeyLength": key_length,
                    "CreatedAt": now, "DkimStatus": "PENDING", "LastChecked": None, "LastSuccess": None,
                    "ErrorType": None, "ConfigurationSetName": params.get("ConfigurationSetName"),
                    "Tags": params.get("Tags", []), "MailFrom": None}
        state["identities"][name] = identity
        return {"IdentityType": "DOMAIN", "VerifiedForSendingStatus": False,
                "DkimAttributes": self._dkim_attributes(identity)}

    def _easy_dkim_key_length(self, attributes: dict) -> str:
        own_key = {"DomainSigningSelector", "DomainSigningPrivateKey"} & attributes.keys()
        if own_key or attributes.get("DomainSigningAttributesOrigin", "AWS_SES") != "AWS_SES":
            raise bad_request("BYODKIM and DKIM origins other than AWS_SES (DkimSigningAttributes) are not simulated "
                              "by the local SES simulator; leave them out to use Easy DKIM.")
        return attributes.get("NextSigningKeyLength", DEFAULT_KEY_LENGTH)

    def _get_email_identity(self, region, state, params):
        identity = self._identity(state, params["EmailIdentity"])
        self._refresh(region, identity)
        mail_from = identity["MailFrom"]
        answer = {
            "IdentityType": "DOMAIN", "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": identity["DkimStatus"] == "SUCCESS",
            "DkimAttributes": self._dkim_attributes(identity), "Policies": {}, "Tags": identity["Tags"],
            "VerificationStatus": identity["DkimStatus"],
            "VerificationInfo": _present(LastCheckedTimestamp=identity["LastChecked"],
                                         LastSuccessTimestamp=identity["LastSuccess"], ErrorType=identity["ErrorType"]),
            **_present(ConfigurationSetName=identity["ConfigurationSetName"]),
        }
        if mail_from:  # without a custom MAIL FROM domain the attributes are left out
            answer["MailFromAttributes"] = {key: mail_from[key] for key in
                                            ("MailFromDomain", "MailFromDomainStatus", "BehaviorOnMxFailure")}
        return answer

    def _delete_email_identity(self, region, state, params):
        identity = self._identity(state, params["EmailIdentity"])
        del state["identities"][identity["EmailIdentity"]]
        self._forget(state, self._arn(region, "identity", identity["EmailIdentity"]))
        return {}

    def _put_email_identity_mail_from_attributes(self, region, state, params):
        identity = self._identity(state, params["EmailIdentity"])
        domain = (params.get("MailFromDomain") or "").lower()
        if not domain:  # no MAIL FROM domain: back to SES's own
            identity["MailFrom"] = None
            return {}
        if not domain.endswith("." + identity["EmailIdentity"]) or not DOMAIN_NAME.match(domain):
            # moto's wording of SES's answer (github.com/getmoto/moto/issues/6753); SES v2's not confirmed.
            raise bad_request(f"Provided MAIL-FROM domain '{domain}' is not subdomain of the domain of the identity "
                              f"'{identity['EmailIdentity']}'.")
        identity["MailFrom"] = {"MailFromDomain": domain, "MailFromDomainStatus": "PENDING",
                                "BehaviorOnMxFailure": params.get("BehaviorOnMxFailure", "USE_DEFAULT_VALUE"),
                                "SetAt": self._now()}
        return {}

    def _put_email_identity_configuration_set_attributes(self, region, state, params):
        identity = self._identity(state, params["EmailIdentity"])
        if params.get("ConfigurationSetName"):
            self._configuration_set(state, params["ConfigurationSetName"])
        identity["ConfigurationSetName"] = params.get("ConfigurationSetName") or None
        return {}

    def _identity(self, state, name: str) -> dict:
        identity = state["identities"].get(name.lower())
        if identity is None:
            raise error("NotFoundException", f"Email identity {name} does not exist.")
        return identity

    def _dkim_attributes(self, identity: dict) -> dict:
        return {"SigningEnabled": True, "Status": identity["DkimStatus"], "Tokens": identity["Tokens"],
                "SigningHostedZone": EASY_DKIM_ZONE, "SigningAttributesOrigin": "AWS_SES",
                "NextSigningKeyLength": identity["KeyLength"], "CurrentSigningKeyLength": identity["KeyLength"],
                "LastKeyGenerationTimestamp": identity["CreatedAt"]}

    def _refresh(self, region: str, identity: dict) -> None:
        """Look at DNS as SES does now and then; here, whenever the identity is asked about."""
        now = self._now()
        if identity["DkimStatus"] == "PENDING":
            identity["LastChecked"] = now
            domain, tokens = identity["EmailIdentity"], identity["Tokens"]
            if region in self.fail_dkim_regions:
                identity.update(DkimStatus="FAILED", ErrorType="TYPE_NOT_FOUND")
            elif all(f"{t}.{EASY_DKIM_ZONE}" in self._dns_lookup(f"{t}._domainkey.{domain}", "CNAME") for t in tokens):
                identity.update(DkimStatus="SUCCESS", LastSuccess=now)
            elif now - identity["CreatedAt"] >= VERIFICATION_WINDOW_SECONDS:
                identity.update(DkimStatus="FAILED", ErrorType="TYPE_NOT_FOUND")
        mail_from = identity["MailFrom"]
        if mail_from and mail_from["MailFromDomainStatus"] == "PENDING":
            if self._mail_from_published(region, mail_from["MailFromDomain"]):
                mail_from["MailFromDomainStatus"] = "SUCCESS"
            elif now - mail_from["SetAt"] >= VERIFICATION_WINDOW_SECONDS:
                mail_from["MailFromDomainStatus"] = "FAILED"

    def _mail_from_published(self, region: str, name: str) -> bool:
        # Exactly one MX, to any region's feedback host (#mail-from-one-mx, #mail-from-in-several-regions).
        values = self._dns_lookup(name, "MX")
        mx = len(values) == 1 and FEEDBACK_MX.fullmatch(values[0].lower()) is not None
        spf = any(v.lower().startswith("v=spf1") and "include:amazonses.com" in v.lower().split()
                  for v in self._dns_lookup(name, "TXT"))
        return mx and spf

    # -- configuration sets and event destinations --------------------------------------------

    def _create_configuration_set(self, region, state, params):
        name = params["ConfigurationSetName"]
        _check_name(name, "configuration set")
        if name in state["configuration_sets"]:
            raise error("AlreadyExistsException", f"Configuration set {name} already exists.")
        state["configuration_sets"][name] = {"Definition": {"Tags": [], **params}, "EventDestinations": {}}
        return {}

    def _get_configuration_set(self, region, state, params):
        return self._configuration_set(state, params["ConfigurationSetName"])["Definition"]

    def _delete_configuration_set(self, region, state, params):
        name = params["ConfigurationSetName"]
        self._configuration_set(state, name)
        del state["configuration_sets"][name]
        for identity in state["identities"].values():
            if identity["ConfigurationSetName"] == name:
                identity["ConfigurationSetName"] = None
        self._forget(state, self._arn(region, "configuration-set", name))
        return {}

    def _create_configuration_set_event_destination(self, region, state, params):
        configuration_set = self._configuration_set(state, params["ConfigurationSetName"])
        name = params["EventDestinationName"]
        _check_name(name, "event destination")
        if name in configuration_set["EventDestinations"]:
            raise error("AlreadyExistsException", f"Event destination {name} already exists.")
        configuration_set["EventDestinations"][name] = self._event_destination(name, params["EventDestination"])
        return {}

    def _update_configuration_set_event_destination(self, region, state, params):
        configuration_set = self._configuration_set(state, params["ConfigurationSetName"])
        name = params["EventDestinationName"]
        if name not in configuration_set["EventDestinations"]:
            raise error("NotFoundException", f"Event destination {name} does not exist.")
        configuration_set["EventDestinations"][name] = self._event_destination(name, params["EventDestination"])
        return {}

    def _get_configuration_set_event_destinations(self, region, state, params):
        configuration_set = self._configuration_set(state, params["ConfigurationSetName"])
        return {"EventDestinations": list(configuration_set["EventDestinations"].values())}

    def _event_destination(self, name: str, definition: dict) -> dict:
        kinds = [m for m in _model().shape_for("EventDestinationDefinition").members if m.endswith("Destination")]
        given = [kind for kind in kinds if kind in definition]
        if len(given) != 1:
            raise bad_request(f"An event destination needs exactly one destination ({', '.join(kinds)}); "
                              f"{len(given)} given.")
        if not definition.get("MatchingEventTypes"):
            raise bad_request("An event destination needs at least one event type (MatchingEventTypes).")
        bus = definition.get("EventBridgeDestination", {}).get("EventBusArn", "")
        if given == ["EventBridgeDestination"] and not bus.endswith(":event-bus/default"):
            raise bad_request(f"Only the default event bus can be an SES event destination, not {bus}.")
        return {"Name": name, "Enabled": False, **definition}

    def _configuration_set(self, state, name: str) -> dict:
        if name not in state["configuration_sets"]:
            raise error("NotFoundException", f"Configuration set {name} does not exist.")
        return state["configuration_sets"][name]

    # -- tenants ------------------------------------------------------------------------------

    def _create_tenant(self, region, state, params):
        name = params["TenantName"]
        _check_name(name, "tenant")
        if name in state["tenants"]:
            raise error("AlreadyExistsException", f"Tenant {name} already exists.")
        tenant_id = "tn-" + secrets.token_hex(12)  # the id's real format is not documented
        state["tenants"][name] = {"TenantName": name, "TenantId": tenant_id,
                                  "TenantArn": self._arn(region, "tenant", f"{name}/{tenant_id}"),
                                  "CreatedTimestamp": self._now(), "Tags": params.get("Tags", []),
                                  "SendingStatus": "ENABLED"}
        return state["tenants"][name]

    def _get_tenant(self, region, state, params):
        return {"Tenant": self._tenant(state, params["TenantName"])}

    def _create_tenant_resource_association(self, region, state, params):
        tenant, arn = self._tenant(state, params["TenantName"]), params["ResourceArn"]
        resources = {self._arn(region, "identity", name) for name in state["identities"]}
        resources |= {self._arn(region, "configuration-set", name) for name in state["configuration_sets"]}
        if arn not in resources:  # templates can be associated too, but are not simulated
            raise error("NotFoundException", f"Resource {arn} does not exist.")
        if [tenant["TenantName"], arn] in state["associations"]:
            raise error("AlreadyExistsException", f"Resource {arn} is already associated with tenant "
                                                  f"{tenant['TenantName']}.")
        state["associations"].append([tenant["TenantName"], arn])
        return {}

    def _tenant(self, state, name: str) -> dict:
        if name not in state["tenants"]:
            raise error("NotFoundException", f"Tenant {name} does not exist.")
        return state["tenants"][name]

    def _forget(self, state, arn: str) -> None:
        state["associations"] = [pair for pair in state["associations"] if pair[1] != arn]

    # -- sending ------------------------------------------------------------------------------

    def _send_email(self, region, state, params):
        content, sender = params["Content"], params.get("FromEmailAddress") or ""
        if [kind for kind in ("Simple", "Raw", "Template") if kind in content] != ["Simple"]:
            raise bad_request("The local SES simulator sends Content.Simple only (exactly one of Simple, Raw and "
                              "Template; Raw and Template are not simulated).")
        if params.get("FromEmailAddressIdentityArn"):
            raise bad_request("Sending authorization (FromEmailAddressIdentityArn) is not simulated.")
        destination = params.get("Destination", {})
        recipients = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destination.get(key, [])]
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            raise bad_request(f"A message needs 1 to {MAX_RECIPIENTS} recipients (Destination); "
                              f"it has {len(recipients)}.")
        if not self._verified_sender(region, state, parseaddr(sender)[1].lower()):
            raise error("MessageRejected", "Email address is not verified. The following identities failed the check "
                                           f"in region {region.upper()}: {sender}")
        for key, find in (("ConfigurationSetName", self._configuration_set), ("TenantName", self._tenant)):
            if params.get(key):
                find(state, params[key])
        message_id = f"0100{int(self._now() * 1000):012x}-{uuid.uuid4()}-000000"  # the shape SES's ids have
        state["sent"].append({"MessageId": message_id, "From": sender, "Subject": content["Simple"]["Subject"]["Data"],
                              "ConfigurationSetName": params.get("ConfigurationSetName"),
                              "TenantName": params.get("TenantName"), "EmailTags": params.get("EmailTags", []),
                              "Outcomes": {r: self._outcome(r) for r in recipients}})
        return {"MessageId": message_id}

    def _get_account(self, region, state, params):
        """The account in this region: production access, sending enabled, healthy; its day's sends counted."""
        sent = float(sum(len(m["Outcomes"]) for m in state["sent"]))  # quotas count recipients
        return {"DedicatedIpAutoWarmupEnabled": False, "EnforcementStatus": "HEALTHY",
                "ProductionAccessEnabled": True, "SendingEnabled": True,
                "SendQuota": {**LOCAL_QUOTA, "SentLast24Hours": sent}}

    def _verified_sender(self, region: str, state, address: str) -> bool:
        """A verified domain identity covers its subdomains' addresses too."""
        labels = address.rpartition("@")[2].split(".") if "@" in address else []
        for i in range(len(labels)):
            identity = state["identities"].get(".".join(labels[i:]))
            if identity:
                self._refresh(region, identity)
                if identity["DkimStatus"] == "SUCCESS":
                    return True
        return False

    @staticmethod
    def _outcome(recipient: str) -> str:
        local, _, domain = parseaddr(recipient)[1].lower().rpartition("@")
        return SIMULATOR_OUTCOMES.get(local.split("+")[0], "SEND") if domain == MAILBOX_SIMULATOR else "SEND"

    # -- helpers ------------------------------------------------------------------------------

    def _arn(self, region: str, kind: str, name: str) -> str:
        return f"arn:aws:ses:{region}:{self.account_id}:{kind}/{name}"

    def _now(self) -> float:
        return self._clock().timestamp()  # rest-json timestamps travel as epoch seconds

    @staticmethod
    def _token() -> str:
        return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(32))
