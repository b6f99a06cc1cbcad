"""Route53: the only module that calls boto3 for DNS.

Every boto call goes through `_translated_errors`, which turns botocore failures into one
ProviderError that says what failed and whether retrying can help. Facts about Route53, boto3
and moto cited as "A…" are in /work/shared/reference/route53-dmarc-ses-cloudflare.md, section A.
"""

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
)
from django.conf import settings

from .errors import DnsNameOutsideZone, ProviderError
from .records import DnsRecord

PROVIDER = "route53"
COMMENT = "ardamail-admin"
TXT_STRING_MAX = 255  # bytes of data per quoted character-string (A3)
READ_TYPES = frozenset({"TXT", "CNAME"})
ROLE_SESSION_NAME = "ardamail-admin-dns"
ROLE_DURATION_SECONDS = 3600  # role chaining caps sessions at one hour (A5)
ROLE_REFRESH_MARGIN = timedelta(minutes=5)
# Standard retry mode already retries these inside boto (A2); seeing one here means boto gave up,
# so a later attempt (a Celery retry) may still succeed.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "PriorRequestNotComplete",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
    }
)


# --- TXT values and names ------------------------------------------------------------------


def quote_txt(value: str) -> str:
    """Turn a logical TXT value into one Route53 Value of quoted character-strings (A3)."""
    # Split the raw bytes, not the escaped text: escaping lengthens a string, and the 255 limit
    # counts data bytes. moto does not validate TXT quoting (A6.1), so this is unit-tested.
    data = value.encode("utf-8")
    chunks = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]
    return " ".join('"' + "".join(_escape_byte(b) for b in chunk) + '"' for chunk in chunks)


def _escape_byte(byte: int) -> str:
    char = chr(byte)
    if char in '"\\':
        return "\\" + char
    if 0x20 <= byte < 0x7F:
        return char
    # Route53 wants non-printable and non-ASCII bytes as a backslash and three octal digits (A3).
    return f"\\{byte:03o}"


def unquote_txt(value: str) -> str:
    """Join the quoted character-strings of one Route53 TXT Value; unquoted input is returned as is."""
    if not value.startswith('"'):
        return value
    data = bytearray()
    inside = False
    i = 0
    while i < len(value):
        char = value[i]
        if char == '"':
            inside = not inside  # separators between strings ('"a" "b"' or '"a""b"') are skipped
        elif inside and char == "\\":
            i, byte_values = _unescape_at(value, i)
            data.extend(byte_values)
        elif inside:
            data.extend(char.encode("utf-8"))
        i += 1
    return data.decode("utf-8", errors="replace")


def _unescape_at(value: str, i: int) -> tuple[int, bytes]:
    """Read the escape starting at value[i] == "\\"; return the index of its last character and its bytes."""
    digits = value[i + 1 : i + 4]
    if len(digits) == 3 and all(d in "01234567" for d in digits):
        return i + 3, bytes([int(digits, 8) & 0xFF])
    return i + 1, value[i + 1 : i + 2].encode("utf-8")


def normalise_name(name: str) -> str:
    return name.lower().removesuffix(".")


def is_within_zone(name: str, zone: str) -> bool:
    """True when name is the zone or below it at a label boundary."""
    # moto only checks a plain string suffix (A6.2), so it would accept "notprod.ardamails.com" in
    # "prod.ardamails.com"; this check is what actually keeps one tenant out of another's names.
    name, zone = normalise_name(name), normalise_name(zone)
    return bool(zone) and (name == zone or name.endswith("." + zone))


def _require_within_zone(records: Iterable[DnsRecord], zone_name: str) -> None:
    for record in records:
        if not is_within_zone(record.name, zone_name):
            raise DnsNameOutsideZone(record.name, normalise_name(zone_name))


# --- error translation ---------------------------------------------------------------------


@contextmanager
def _translated_errors(operation: str) -> Iterator[None]:
    """Run boto calls and turn whatever is left after boto's own retries into one ProviderError."""
    try:
        yield
    except ClientError as exc:
        raise _client_error(exc, operation) from exc
    except (ConnectionError, HTTPClientError) as exc:  # refused, DNS, connect/read timeouts, resets
        raise ProviderError(f"Could not reach Route53 to {operation}", provider=PROVIDER, transient=True) from exc
    except NoCredentialsError as exc:
        raise ProviderError(
            f"Route53 could not {operation}: this worker has no AWS credentials "
            "(no environment keys, profile or IAM role were found).",
            provider=PROVIDER,
            transient=False,
        ) from exc


def _client_error(exc: ClientError, operation: str) -> ProviderError:
    error = exc.response.get("Error", {})
    code = error.get("Code") or "Unknown"
    message = error.get("Message") or "no details given"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return ProviderError(
        f"Route53 could not {operation}: {message} ({code})",
        provider=PROVIDER,
        transient=code in TRANSIENT_CODES or (status or 0) >= 500,
        status=status,
        error_code=code,
        provider_message=error.get("Message", ""),
    )


# --- record sets ---------------------------------------------------------------------------


def _rrsets(records: Iterable[DnsRecord]) -> list[dict]:
    """One ResourceRecordSet per name+type: UPSERT replaces a whole set (A3), so its values travel together."""
    grouped: dict[tuple[str, str], dict] = {}
    for record in records:
        name = normalise_name(record.name)
        rrset = grouped.setdefault(
            (name, record.type),
            {"Name": name + ".", "Type": record.type, "TTL": record.ttl, "ResourceRecords": []},
        )
        rrset["ResourceRecords"].append({"Value": _api_value(record)})
    return list(grouped.values())


def _api_value(record: DnsRecord) -> str:
    if record.type == "TXT":
        return quote_txt(record.value)
    if record.type == "CNAME":
        return normalise_name(record.value) + "."
    return record.value


def _records_from(rrset: dict) -> list[DnsRecord]:
    """Read-back records, one per value; alias sets have no ResourceRecords and yield nothing."""
    name, rtype = normalise_name(rrset["Name"]), rrset["Type"]
    return [
        DnsRecord(name=name, type=rtype, value=_logical_value(rtype, rr["Value"]), ttl=rrset.get("TTL", 0))
        for rr in rrset.get("ResourceRecords", [])
    ]


def _logical_value(rtype: str, value: str) -> str:
    return unquote_txt(value) if rtype == "TXT" else normalise_name(value)


def _strip_prefix(aws_id: str) -> str:
    return aws_id.rsplit("/", 1)[-1]  # "/hostedzone/Z123" -> "Z123", "/change/C123" -> "C123"


# --- the client ----------------------------------------------------------------------------


class Route53Client:
    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        role_arn: str | None = None,
        session: boto3.session.Session | None = None,
        max_attempts: int = 5,
    ):
        # endpoint_url None lets boto3 honour the standard AWS_ENDPOINT_URL variable itself.
        # botocore counts retries.max_attempts as retries after the first try: max_attempts=5 means
        # up to 6 requests, with jittered exponential backoff between them (A2).
        self._endpoint_url = endpoint_url
        self._region = region
        self._role_arn = role_arn or None
        self._session = session or boto3.session.Session()
        self._config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts}, connect_timeout=5, read_timeout=20
        )
        self._boto = None
        self._expires_at: datetime | None = None
        self._zone_ids: dict[str, str] = {}
        # One instance serves every thread of a process (providers.route53_for_partition): boto3
        # clients are thread-safe, sessions are not, so building the client is serialised.
        self._build_lock = threading.Lock()

    @classmethod
    def for_partition(cls, partition) -> "Route53Client":
        return cls(
            endpoint_url=settings.AWS_ENDPOINT_URL or None,
            region=settings.AWS_REGION,
            role_arn=partition.dns_role_arn or None,
        )

    # boto plumbing

    @property
    def _client(self):
        """The boto3 route53 client, rebuilt with fresh role credentials shortly before they expire."""
        with self._build_lock:
            expiring = (self._expires_at is not None
                        and datetime.now(timezone.utc) >= self._expires_at - ROLE_REFRESH_MARGIN)
            if self._boto is None or expiring:
                self._boto = self._build_client()
            return self._boto

    def _build_client(self):
        credentials = self._role_credentials()  # {} without a role: boto's default credential chain applies
        return self._session.client(
            "route53", endpoint_url=self._endpoint_url, region_name=self._region, config=self._config, **credentials
        )

    def _role_credentials(self) -> dict:
        if not self._role_arn:
            return {}
        sts = self._session.client(
            "sts", endpoint_url=self._endpoint_url, region_name=self._region, config=self._config
        )
        with _translated_errors(f"assume the DNS role {self._role_arn}"):
            answer = sts.assume_role(
                RoleArn=self._role_arn, RoleSessionName=ROLE_SESSION_NAME, DurationSeconds=ROLE_DURATION_SECONDS
            )
        credentials = answer["Credentials"]
        self._expires_at = credentials["Expiration"]
        return {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }

    def _call(self, operation: str, method: str, **params) -> dict:
        try:
            with _translated_errors(operation):
                return getattr(self._client, method)(**params)
        except ProviderError as exc:
            if exc.error_code == "NoSuchHostedZone":
                self._zone_ids.clear()  # the zone was re-created under a new id: look it up again
            raise

    # zones

    def zone_id_for(self, zone_name: str) -> str:
        zone = normalise_name(zone_name)
        zone_id = self._public_zone_id(zone)
        if zone_id is None:
            raise ProviderError(f"No public Route53 hosted zone named {zone}.", provider=PROVIDER, transient=False)
        return zone_id

    def _public_zone_id(self, zone: str) -> str | None:
        """Exact-name lookup; only found ids are cached, so a zone created later is still found."""
        cached = self._zone_ids.get(zone)
        if cached is not None:
            return cached
        # DNSName is where the listing starts, not a filter (A4), and moto only returns exact
        # matches (A6.7): compare the name ourselves, and skip private zones of the same name.
        answer = self._call(
            f"look up the hosted zone {zone}", "list_hosted_zones_by_name", DNSName=zone, MaxItems="10"
        )
        for hosted in answer["HostedZones"]:
            if hosted["Name"].lower() == zone + "." and not hosted.get("Config", {}).get("PrivateZone"):
                zone_id = _strip_prefix(hosted["Id"])
                self._zone_ids[zone] = zone_id
                return zone_id  # from the local: another thread may clear the cache meanwhile
        return None

    def _most_specific_zone(self, name: str) -> tuple[str, str] | None:
        # Records belong in the most specific zone: a delegated subzone hides the parent's (A4).
        labels = name.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            zone_id = self._public_zone_id(candidate)
            if zone_id:
                return candidate, zone_id
        return None

    # records

    def upsert(self, *, zone_id: str, zone_name: str, records: list[DnsRecord]) -> str:
        """Write all records in one all-or-nothing batch (A1); returns the change id ("" when records is empty)."""
        _require_within_zone(records, zone_name)
        if not records:
            return ""  # Route53 rejects an empty Changes list; converging to "no difference" needs no call
        changes = [{"Action": "UPSERT", "ResourceRecordSet": rrset} for rrset in _rrsets(records)]
        return self._change(zone_id, changes, f"update records in the zone {normalise_name(zone_name)}")

    def delete(self, *, zone_id: str, zone_name: str, records: list[DnsRecord]) -> str | None:
        """Delete the record sets at these names and types that exist now; None when there are none."""
        _require_within_zone(records, zone_name)
        wanted = {(normalise_name(r.name), r.type) for r in records}
        names = {name for name, _ in wanted}
        # DELETE must repeat the current TTL and values exactly (A1), so send the sets as listed.
        current = [
            rrset
            for rrset in self._rrsets_at(zone_id, zone_name, names)
            if (normalise_name(rrset["Name"]), rrset["Type"]) in wanted
        ]
        if not current:
            return None
        changes = [{"Action": "DELETE", "ResourceRecordSet": rrset} for rrset in current]
        return self._change(zone_id, changes, f"delete records in the zone {normalise_name(zone_name)}")

    def _change(self, zone_id: str, changes: list[dict], operation: str) -> str:
        # One batch per tenant (a handful of records) stays far below the batch limits (A1).
        answer = self._call(
            operation,
            "change_resource_record_sets",
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": COMMENT, "Changes": changes},
        )
        return _strip_prefix(answer["ChangeInfo"]["Id"])

    def read(self, *, zone_id: str, zone_name: str, names: Iterable[str]) -> list[DnsRecord]:
        """The TXT and CNAME records at these names, normalised like desired records (purpose "")."""
        records = []
        for rrset in self._rrsets_at(zone_id, zone_name, names):
            if rrset["Type"] in READ_TYPES:
                records.extend(_records_from(rrset))
        return records

    def _rrsets_at(self, zone_id: str, zone_name: str, names: Iterable[str]) -> list[dict]:
        """Raw record sets exactly at each name; names outside the zone cannot be there, so cost no call."""
        found = []
        for name in sorted({normalise_name(n) for n in names}):
            if not is_within_zone(name, zone_name):
                continue
            # The listing is sorted by name and starts at StartRecordName (A4): the first few sets
            # are the ones at this name, and the rest (other names) are dropped.
            answer = self._call(
                f"read the records at {name}",
                "list_resource_record_sets",
                HostedZoneId=zone_id,
                StartRecordName=name,
                MaxItems="10",
            )
            found.extend(s for s in answer["ResourceRecordSets"] if normalise_name(s["Name"]) == name)
        return found

    def lookup(self, fqdn: str, rtype: str) -> list[str]:
        """Values of one type at fqdn, found in the most specific hosted zone (for the local Postmark simulator)."""
        name = normalise_name(fqdn)
        zone = self._most_specific_zone(name)
        if zone is None:
            return []
        zone_name, zone_id = zone
        records = self.read(zone_id=zone_id, zone_name=zone_name, names=[name])
        return [r.value for r in records if r.type == rtype.upper()]
