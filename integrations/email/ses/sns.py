"""Amazon SNS's HTTP(S) deliveries: is a POSTed message SNS's own, for a topic we expect, and how a
subscription is confirmed. The facts, with their sources, are in docs/providers/ses-events.md (cited
as #anchors).

A message is taken only when all of these hold, checked in this order (#checks):
- its `Type` is one of SNS's three and the `x-amz-sns-message-type` header says the same;
- its `SignatureVersion` is 1 (SHA1withRSA) or 2 (SHA256withRSA);
- its `SigningCertURL` (and a confirmation's `SubscribeURL`) is https on `sns.<region>.amazonaws.com`
  or `….amazonaws.com.cn`, as AWS's own validators require: any other host could serve a certificate
  of its own and "sign" a forged message;
- its `TopicArn` is one the caller expects (an SNS topic ours publishes to);
- its `Signature` verifies, with the certificate's public key, over the string AWS builds for its type.

httpx is called from here only: the certificate (fetched once per URL and kept) and the visit to a
confirmation's SubscribeURL. Failures of those become one ProviderError saying whether retrying can
help; a message we refuse raises SnsRejected with the sentence to answer.
"""

import base64
import binascii
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from integrations.errors import ProviderError

PROVIDER = "sns"
MESSAGE_TYPE_HEADER = "x-amz-sns-message-type"  # (#headers)
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
NOTIFICATION = "Notification"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
# The fields of the string to sign, per type, in AWS's (byte-sorted) order (#string-to-sign).
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: _CONFIRMATION_FIELDS,
    UNSUBSCRIBE_CONFIRMATION: _CONFIRMATION_FIELDS,
}
OPTIONAL_FIELDS = frozenset({"Subject"})  # signed only when the message has it (#string-to-sign)
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}  # SignatureVersion -> the hash of SHAxwithRSA (#signature-versions)
# sns.<region>.amazonaws.com(.cn) with a region-shaped label (us-east-1, us-gov-west-1, cn-north-1): a looser
# "sns.<anything>.amazonaws.com" would also take an S3 bucket named "sns" (sns.s3.amazonaws.com) (#certificate-host).
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]+\.amazonaws\.com(?:\.cn)?")
TIMEOUT_SECONDS = 5.0  # SNS waits 15 s for our answer (#retries): a slow certificate must not use it all
MAX_CERTIFICATE_BYTES = 16 * 1024  # SNS's certificate is about 2 KB of PEM
MAX_ANSWER_BYTES = 64 * 1024  # the ConfirmSubscriptionResponse XML
CACHED_CERTIFICATES = 32  # SNS signs with a few certificates per region; they change rarely


class SnsRejected(Exception):
    """A message we do not take; the sentence says why. `status` is the HTTP answer: 400 for a message
    that is not a valid SNS message, 403 for a valid one from a topic we do not expect."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SnsMessage:
    """A message whose signature verified and whose topic the caller expects."""

    type: str  # SubscriptionConfirmation | Notification | UnsubscribeConfirmation
    message_id: str
    topic_arn: str
    message: str  # a Notification's Message is what the publisher (SES) published, as text
    timestamp: str
    subscribe_url: str = ""  # SubscriptionConfirmation and UnsubscribeConfirmation only


def sns_url(url: str, field: str, *, certificate: bool = False) -> httpx.URL:
    """`url` as httpx will request it, if it is https on an SNS host (#certificate-host); else SnsRejected.
    The URL is parsed once, by httpx itself, so the host checked is the host asked."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if (parsed is None or parsed.scheme != "https" or parsed.userinfo or parsed.port not in (None, 443)
            or not SNS_HOST.fullmatch(parsed.host) or (certificate and not parsed.path.endswith(".pem"))):
        raise SnsRejected(f"{field} is not an https address on an Amazon SNS host (sns.<region>.amazonaws.com); "
                          "it was not fetched.")
    return parsed


def string_to_sign(fields: dict[str, str]) -> bytes:
    """Each signed field of the message's type as `name\\nvalue\\n`, in AWS's order (#string-to-sign)."""
    names = SIGNED_FIELDS[fields["Type"]]
    # surrogatepass: a lone surrogate (never in SNS's own text) then fails the signature, not the code.
    return "".join(f"{name}\n{fields[name]}\n" for name in names if name in fields).encode("utf-8", "surrogatepass")


def _fields(payload: object, header_type: str | None) -> dict[str, str]:
    """The message's fields that matter, each a string, or SnsRejected saying which is wrong."""
    if not isinstance(payload, dict):
        raise SnsRejected("The body must be a JSON object (an Amazon SNS message).")
    kind = payload.get("Type")
    if kind not in SIGNED_FIELDS:
        raise SnsRejected(f"Type {str(kind)[:40]!r} is not an Amazon SNS message type ({', '.join(SIGNED_FIELDS)}).")
    if header_type is None:
        raise SnsRejected(f"The {MESSAGE_TYPE_HEADER} header is missing: Amazon SNS sends it with every message.")
    if header_type != kind:
        raise SnsRejected(f"The {MESSAGE_TYPE_HEADER} header ({str(header_type)[:40]!r}) does not match the "
                          f"message's Type ({kind!r}).")
    if payload.get("SignatureVersion") not in HASHES:
        raise SnsRejected(f"SignatureVersion {str(payload.get('SignatureVersion'))[:10]!r} is not one this receiver "
                          "verifies (1 or 2).")
    fields = {}
    for name in (*SIGNED_FIELDS[kind], "Signature", "SignatureVersion", "SigningCertURL"):
        value = payload.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str) or not (value or name in OPTIONAL_FIELDS):
            raise SnsRejected(f"{name} is missing or not a string.")
        fields[name] = value
    return fields


class SnsClient:
    """Verifies SNS messages and confirms subscriptions; safe to share between threads. Its certificates
    are kept per URL for the life of the process (`default()` is the process's one)."""

    _default: "SnsClient | None" = None
    _default_lock = threading.Lock()

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = TIMEOUT_SECONDS):
        # No redirects: an answer from another host would be another host's certificate.
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False,
                                  headers={"User-Agent": "ardamail-admin"})
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> "SnsClient":
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def verify(self, payload: object, *, header_type: str | None,
               expected_topic: Callable[[str], bool]) -> SnsMessage:
        """The message, if it is SNS's own for an expected topic (the checks in the module's docstring)."""
        fields = _fields(payload, header_type)
        certificate_url = sns_url(fields["SigningCertURL"], "SigningCertURL", certificate=True)
        if "SubscribeURL" in fields:
            sns_url(fields["SubscribeURL"], "SubscribeURL")
        if not expected_topic(fields["TopicArn"]):
            raise SnsRejected(f"Topic {fields['TopicArn'][:300]} is not one this partition's SES events are "
                              "published to; no subscription to it is confirmed.", status=403)
        try:
            signature = base64.b64decode(fields["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected("Signature is not base64.") from None
        try:
            self.public_key(certificate_url).verify(signature, string_to_sign(fields), padding.PKCS1v15(),
                                                    HASHES[fields["SignatureVersion"]]())
        except InvalidSignature:
            raise SnsRejected("The signature does not match the message: it was changed, or not signed by "
                              "Amazon SNS.") from None
        return SnsMessage(type=fields["Type"], message_id=fields["MessageId"], topic_arn=fields["TopicArn"],
                          message=fields["Message"], timestamp=fields["Timestamp"],
                          subscribe_url=fields.get("SubscribeURL", ""))

    def confirm(self, message: SnsMessage) -> None:
        """Confirm a verified SubscriptionConfirmation by visiting its SubscribeURL (#confirmation)."""
        if message.type != SUBSCRIPTION_CONFIRMATION:
            raise ValueError(f"A {message.type} has no subscription to confirm.")
        # The URL's Token is a credential for this subscription: it is never put in a message.
        self._get(sns_url(message.subscribe_url, "SubscribeURL"), f"confirm the subscription to {message.topic_arn}",
                  MAX_ANSWER_BYTES)

    def public_key(self, url: httpx.URL) -> rsa.RSAPublicKey:
        """The RSA key of the certificate at `url` (an SNS host's, see sns_url), fetched once per URL."""
        with self._lock:
            if str(url) in self._keys:
                return self._keys[str(url)]
        pem = self._get(url, f"fetch its signing certificate {url}", MAX_CERTIFICATE_BYTES)
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise ProviderError(f"Amazon SNS's signing certificate {url} is not a PEM certificate.",
                                provider=PROVIDER, transient=False) from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise ProviderError(f"Amazon SNS's signing certificate {url} does not hold an RSA key.",
                                provider=PROVIDER, transient=False)
        with self._lock:
            if len(self._keys) >= CACHED_CERTIFICATES:
                self._keys.pop(next(iter(self._keys)))  # the oldest
            self._keys[str(url)] = key
        return key

    def _get(self, url: httpx.URL, operation: str, limit: int) -> bytes:
        """One GET to SNS; its body (at most `limit` bytes) or a ProviderError ("… could not <operation>")."""
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    status = response.status_code
                    raise ProviderError(f"Amazon SNS answered HTTP {status} when asked to {operation}.",
                                        provider=PROVIDER, transient=status == 429 or status >= 500, status=status)
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise ProviderError(f"Amazon SNS answered with more than {limit} bytes when asked to "
                                            f"{operation}.", provider=PROVIDER, transient=False)
                return body
        except httpx.TimeoutException:
            raise ProviderError(f"Amazon SNS did not answer in time when asked to {operation}.", provider=PROVIDER,
                                transient=True, error_code="timeout") from None
        except httpx.HTTPError:
            raise ProviderError(f"Could not reach Amazon SNS to {operation}.", provider=PROVIDER,
                                transient=True) from None
