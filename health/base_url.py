"""PUBLIC_BASE_URL, the address Postmark posts every webhook to from the internet
(`{PUBLIC_BASE_URL}/webhooks/postmark/{partition}/`): a plain https URL of a public host.

A URL holding a user name or password is never printed as it is: the sentence shows it redacted.
"""

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from .results import Check, Status, finding

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names that public DNS never resolves (RFC 6761 and 6762, RFC 8375 for home.arpa, and ICANN's
# 2024 reservation of .internal); localhost is judged as a loopback address instead.
SPECIAL_USE = ("local", "internal", "test", "invalid", "example", "home.arpa")
FIX = "set it to the dashboard's public https:// address"


class Unusable(ValueError):
    """PUBLIC_BASE_URL cannot be used as it is written; the message is the sentence."""


def redacted(url: str) -> str:
    """The URL with any user name and password replaced (it may not even parse)."""
    return re.sub(r"^([^:/?#]*://)[^/?#]*@", r"\1***@", url)


def address_of(host: str) -> IPAddress | None:
    """The IP address a host names, in every form a URL parser accepts for IPv4 (127.1, 0x7f.1,
    2130706433, 0177.0.0.1: `socket.inet_aton`, as WHATWG URL parsers do too); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):  # ValueError: an embedded NUL
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    address = address_of(host)
    return host == "localhost" or host.endswith(".localhost") or (address is not None and address.is_loopback)


def local_mode() -> bool:
    """The Postmark simulator on this machine takes the API calls (settings.local) and posts the
    webhooks from here, so a loopback dashboard URL is the right one."""
    try:
        return is_loopback(_host(urlsplit(settings.POSTMARK_API_URL)))
    except ValueError:
        return False


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").removesuffix(".")  # hostname is already lowercase


def parsed(url: str) -> tuple[str, str]:
    """(scheme, host) of a URL fit to have webhook paths appended; Unusable says why it is not."""
    shown = redacted(url)
    if re.search(r"[\s\x00-\x1f\x7f]", url):  # urlsplit would quietly drop some of them
        raise Unusable(f"PUBLIC_BASE_URL {shown!r} holds whitespace or a control character: write it without.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", …: never the userinfo
        raise Unusable(f"PUBLIC_BASE_URL {shown} is not a valid URL ({exc}): {FIX}.") from None
    if "@" in parts.netloc:
        raise Unusable(f"PUBLIC_BASE_URL {shown} holds a user name or password, which Postmark would be sent "
                       f"with every webhook: remove it (webhooks authenticate with the webhook secret).")
    if "?" in url or "#" in url:
        raise Unusable(f"PUBLIC_BASE_URL {shown} has a query or fragment, but webhook paths are appended to it: "
                       "end it at the path.")
    if port == 0:
        raise Unusable(f"PUBLIC_BASE_URL {shown} names port 0: write a port from 1 to 65535, or none.")
    if not _host(parts):
        raise Unusable(f"PUBLIC_BASE_URL {shown} names no host: {FIX}.")
    return parts.scheme, _host(parts)


def base_url_check() -> Check:
    """Postmark must reach the webhook URL from the internet, over https; a URL on an internal address
    is reportedly refused with ErrorCode 606 (docs/health.md#public-base-url)."""
    url = settings.PUBLIC_BASE_URL
    try:
        scheme, host = parsed(url)
    except Unusable as exc:
        return finding("public base URL", None, Status.PROBLEM, str(exc))
    if local_mode() and is_loopback(host):
        return finding("public base URL", None, Status.OK, f"PUBLIC_BASE_URL is {url}: fine in local mode, where "
                                                           "the Postmark simulator on this machine posts the webhooks.")
    if scheme != "https":
        return finding("public base URL", None, Status.PROBLEM,
                       f"PUBLIC_BASE_URL is {url}, but Postmark webhooks need https: {FIX}.")
    return _host_check(url, host)


def _host_check(url: str, host: str) -> Check:
    address = address_of(host)
    if is_loopback(host) or (address is not None and not address.is_global):
        shown = host if address is None or str(address) == host else f"{host} ({address})"
        return finding("public base URL", None, Status.PROBLEM,
                       f"PUBLIC_BASE_URL points at {shown}, an internal address that Postmark refuses for webhooks: "
                       f"{FIX}.")
    special = next((name for name in SPECIAL_USE if address is None and (host == name or host.endswith("." + name))),
                   None)
    if special:
        return finding("public base URL", None, Status.WARNING,
                       f"PUBLIC_BASE_URL points at {host}, under .{special}, a special-use name that public DNS does "
                       f"not resolve, so Postmark cannot reach it: {FIX}.")
    return finding("public base URL", None, Status.OK, f"PUBLIC_BASE_URL is {url}: public and https.")
