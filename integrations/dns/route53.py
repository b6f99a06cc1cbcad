"""Route53: the only module that calls boto3 for DNS. It fills the DNS-provider interface.

Every boto call goes through `_translated_errors`, which turns botocore failures into one
ProviderError that says what failed and whether retrying can help. The Route53 behaviour relied
on here is written down, with its sources, in docs/providers/route53.md (cited as #anchors).
"""

import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config

from ardamail_admin import metrics
from integrations import BeforeWrite, PlannedCall, aws
from integrations.errors import ProviderError

from . import (
    READ_TYPES,
    DnsRecord,
    HostedZone,
    is_within_zone,
    mx_value,
    normalise_name,
    require_within_zone,
    split_mx,
)
from .txt import quote_txt, unquote_txt

PROVIDER = "route53"
COMMENT = "ardamail-admin"
LIST_PAGE = 300  # the most sets ListResourceRecordSets returns in one page (#listing-records)
ROLE_SESSION_NAME = "ardamail-admin-dns"
ROLE_DURATION_SECONDS = 3600  # role chaining caps a session at one hour (#assumed-roles)
ROLE_REFRESH_MARGIN = timedelta(minutes=5)
# One call's worst case must stay well inside a workflow's lease (tenants.lifecycle): three
# attempts of at most connect + read seconds each, plus botocore's backoff between them.
CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_ATTEMPTS = 3, 10, 3
CALL_BUDGET_SECONDS = TOTAL_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + 2 + 4
# botocore's standard retry mode already retries these (#rate-limits-and-retries); one seen here
# means boto gave up, so a later attempt (the workflow's own retry) may still succeed.
TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded",
     "ServiceUnavailable", "InternalError"}
)
TIMED_OUT = aws.TIMED_OUT  # the error_code of a call that got no answer within the client's timeouts


def _translated_errors(operation: str):
    """Run boto calls and turn whatever is left after boto's own retries into one ProviderError."""
    return aws.translated_errors("Route53", operation, provider=PROVIDER, transient_codes=TRANSIENT_CODES,
                                 answer_format="valid XML")


def _rrsets(records: Iterable[DnsRecord]) -> list[dict]:
    """One ResourceRecordSet per name+type: UPSERT replaces a whole set (#change-batches)."""
    grouped: dict[tuple[str, str], dict] = {}
    for record in records:
        name = normalise_name(record.name)
        rrset = grouped.setdefault(
            (name, record.type), {"Name": name + ".", "Type": record.type, "TTL": record.ttl, "ResourceRecords": []}
        )
        rrset["ResourceRecords"].append({"Value": _api_value(record)})
    return list(grouped.values())


def _api_value(record: DnsRecord) -> str:
    if record.type == "TXT":
        return quote_txt(record.value)
    if record.type == "CNAME":
        return normalise_name(record.value) + "."
    if record.type == "MX":  # "10 mx.example.org" -> "10 mx.example.org." (#mx-values)
        priority, host = split_mx(record.value)
        return f"{priority} {host}."
    return record.value


def _records_from(rrset: dict) -> list[DnsRecord]:
    """Read-back records, one per value; alias sets have no ResourceRecords and yield nothing."""
    name, rtype = normalise_name(rrset["Name"]), rrset["Type"]
    return [
        DnsRecord(name=name, type=rtype, value=_logical_value(rtype, rr["Value"]), ttl=rrset.get("TTL", 0))
        for rr in rrset.get("ResourceRecords", [])
    ]


def _logical_value(rtype: str, value: str) -> str:
    if rtype == "TXT":
        return unquote_txt(value)
    if rtype == "MX":
        priority, host = split_mx(value)
        return mx_value(priority, host)
    return normalise_name(value)


def listing_key(name: str) -> str:
    """Where ListResourceRecordSets sorts a name: its labels reversed, with the trailing dot, compared
    in ASCII (#listing-records); the dot matters beside characters below it, such as "-"."""
    # Route53 writes some characters as octal escapes (\052 for "*", #txt-values) but sorts them as
    # the character itself.
    name = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), normalise_name(name))
    return ".".join(reversed(name.split("."))) + "."


def _strip_prefix(aws_id: str) -> str:
    return aws_id.rsplit("/", 1)[-1]  # "/hostedzone/Z123" -> "Z123", "/change/C123" -> "C123"


def plan_upsert(zone_name: str, zone_id: str, records: list[DnsRecord]) -> list[PlannedCall]:
    """The calls `Route53Zone.upsert` makes for these records: a zone lookup unless its id is known,
    then one change of UPSERTs, a set per name and type (#change-batches)."""
    require_within_zone(records, zone_name)
    calls = [] if zone_id else [PlannedCall(PROVIDER, "ListHostedZonesByName", f"find the zone {zone_name}")]
    sets = _rrsets(records)
    return calls + [PlannedCall(PROVIDER, "ChangeResourceRecordSets",
                                f"UPSERT {len(sets)} record sets in {zone_name} in one change")]


class Route53:
    """A Route53 account (optionally through an assumed role); one instance serves a whole process."""

    def __init__(self, *, endpoint_url: str | None = None, region: str = "us-east-1", role_arn: str | None = None,
                 session: boto3.session.Session | None = None, total_attempts: int = TOTAL_ATTEMPTS,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 page_pause: float = 0.0, sleep: Callable[[float], None] = time.sleep):
        # endpoint_url None lets boto3 honour the standard AWS_ENDPOINT_URL variable itself.
        self._endpoint_url = endpoint_url
        self._region = region
        self._role_arn = role_arn or None
        self._session = session or boto3.session.Session()
        self._config = Config(
            retries={"mode": "standard", "total_max_attempts": total_attempts},
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        # A read of many pages (a partition's sweep) waits this long between them, so it leaves the
        # account's 5 requests per second (#rate-limits-and-retries) to onboarding and the other checks.
        self.page_pause, self._sleep = page_pause, sleep
        self._boto = None
        self._expires_at: datetime | None = None
        self._zone_ids: dict[str, str] = {}
        # boto3 clients are thread-safe, sessions are not: building the client is serialised.
        self._build_lock = threading.Lock()

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
        sts = self._session.client("sts", endpoint_url=self._endpoint_url, region_name=self._region, config=self._config)
        with metrics.provider_call("sts", "assume_role"), _translated_errors(f"assume the DNS role {self._role_arn}"):
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

    def pause_between_pages(self) -> None:
        if self.page_pause > 0:
            self._sleep(self.page_pause)

    def prepare(self) -> None:
        """Build (or rebuild, with fresh role credentials) the boto client now."""
        self._client  # noqa: B018

    def call(self, operation: str, method: str, **params) -> dict:
        try:
            # Counted by boto method (ardamail_admin.metrics): `operation` names zones, too many labels.
            with metrics.provider_call(PROVIDER, method), _translated_errors(operation):
                return getattr(self._client, method)(**params)
        except ProviderError as exc:
            if exc.error_code == "NoSuchHostedZone":
                self._zone_ids.clear()  # the zone was re-created under a new id: look it up again
            raise

    # zones

    def zone(self, name: str, *, zone_id: str = "") -> "Route53Zone":
        return Route53Zone(self, normalise_name(name), zone_id)

    def zone_id_for(self, zone_name: str) -> str:
        zone = normalise_name(zone_name)
        zone_id = self.find_zone(zone)
        if zone_id is None:
            raise ProviderError(f"No public Route53 hosted zone named {zone}.", provider=PROVIDER, transient=False)
        return zone_id

    def create_zone(self, name: str) -> str:
        zone = normalise_name(name)
        existing = self.find_zone(zone)
        if existing:
            return existing
        answer = self.call(f"create the hosted zone {zone}", "create_hosted_zone", Name=zone,
                           CallerReference=f"ardamail-{zone}")
        return _strip_prefix(answer["HostedZone"]["Id"])

    def find_zone(self, name: str) -> str | None:
        """The id of the public zone of exactly this name (the first, should there be several: the
        health checks report that); only found ids are cached, so a zone created later is still found."""
        zone = normalise_name(name)
        cached = self._zone_ids.get(zone)
        if cached is not None:
            return cached
        ids = self.find_zones(zone)
        if not ids:
            return None
        self._zone_ids[zone] = ids[0]
        return ids[0]  # from the local: another thread may clear the cache meanwhile

    def find_zones(self, name: str) -> list[str]:
        """The ids of every public zone of exactly this name: Route53 lets an account create several."""
        zone, found = normalise_name(name), []
        # DNSName is where the listing starts, not a filter, and moto returns only exact matches
        # (#listing-zones): compare the name here, and skip private zones of the same name. Zones of
        # one name sort together, so the first other name ends the search.
        params = {"DNSName": zone, "MaxItems": "100"}
        while True:
            answer = self.call(f"look up the hosted zone {zone}", "list_hosted_zones_by_name", **params)
            for hosted in answer["HostedZones"]:
                if hosted["Name"].lower() != zone + ".":
                    return found
                if not hosted.get("Config", {}).get("PrivateZone"):
                    found.append(_strip_prefix(hosted["Id"]))
            if not answer.get("IsTruncated"):
                return found
            params = {"DNSName": answer["NextDNSName"], "HostedZoneId": answer["NextHostedZoneId"], "MaxItems": "100"}

    def hosted_zone(self, name: str, *, zone_id: str = "") -> HostedZone | None:
        """GetHostedZone answers with the zone's name and its delegation set: the four name servers
        Route53 assigned it, which the parent zone must list (#hosted-zone-details)."""
        zone_id = zone_id or self.find_zone(name)
        if not zone_id:
            return None
        try:
            answer = self.call(f"read the hosted zone {zone_id}", "get_hosted_zone", Id=zone_id)
        except ProviderError as exc:
            if exc.error_code == "NoSuchHostedZone":
                return None
            raise
        zone, servers = answer["HostedZone"], answer.get("DelegationSet", {}).get("NameServers", [])
        return HostedZone(id=_strip_prefix(zone["Id"]), name=normalise_name(zone["Name"]),
                          name_servers=tuple(sorted(normalise_name(server) for server in servers)),
                          private=bool(zone.get("Config", {}).get("PrivateZone")))


class Route53Zone:
    """One hosted zone; the zone id is looked up by name once, unless the partition names it."""

    provider = PROVIDER

    def __init__(self, route53: Route53, name: str, zone_id: str = ""):
        self._route53 = route53
        self.name = name
        self._zone_id = zone_id

    @property
    def zone_id(self) -> str:
        return self._zone_id or self._route53.zone_id_for(self.name)

    def upsert(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Write all records in one all-or-nothing batch (#change-batches)."""
        require_within_zone(records, self.name)
        if not records:
            return  # Route53 rejects an empty Changes list; converging to "no difference" needs no call
        self._change([{"Action": "UPSERT", "ResourceRecordSet": rrset} for rrset in _rrsets(records)],
                     f"update records in the zone {self.name}", before_write)

    def delete(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Delete the record sets at these names and types that exist now."""
        require_within_zone(records, self.name)
        wanted = {(normalise_name(r.name), r.type) for r in records}
        # DELETE must repeat the current TTL and values exactly (#change-batches): send them as listed.
        current = self._sets_of(wanted)
        if not current:
            return
        try:
            self._change([{"Action": "DELETE", "ResourceRecordSet": rrset} for rrset in current],
                         f"delete records in the zone {self.name}", before_write)
        except ProviderError as exc:
            # boto retries a DELETE whose answer was lost (a read timeout), and Route53 refuses the retry
            # as InvalidChangeBatch once the first attempt has deleted the sets (#change-batches): gone
            # is what was asked. Sets still there (changed meanwhile) keep the error.
            if exc.error_code != "InvalidChangeBatch" or self._sets_of(wanted):
                raise

    def _sets_of(self, wanted: set[tuple[str, str]]) -> list[dict]:
        return [s for s in self._rrsets_at({n for n, _ in wanted}) if (normalise_name(s["Name"]), s["Type"]) in wanted]

    def _change(self, changes: list[dict], operation: str, before_write: BeforeWrite | None) -> None:
        # Everything that may call AWS first (the zone id, fresh role credentials), so that the
        # write itself is the only call between the holder's renewal and the change.
        zone_id = self.zone_id
        self._route53.prepare()
        if before_write is not None:
            before_write()
        self._route53.call(operation, "change_resource_record_sets", HostedZoneId=zone_id,
                           ChangeBatch={"Comment": COMMENT, "Changes": changes})

    def read(self, names: Iterable[str], *, types: Iterable[str] = READ_TYPES) -> list[DnsRecord]:
        wanted = frozenset(types)
        records = []
        for rrset in self._rrsets_at(names):
            if rrset["Type"] in wanted:
                records.extend(_records_from(rrset))
        return records

    def _rrsets_at(self, names: Iterable[str]) -> list[dict]:
        """Raw record sets exactly at each name, in as few listings as the zone's order allows.

        The listing is sorted (#listing-records) and pages hold up to 300 sets: one call starting at
        the first name returns the sets of every name up to the end of its page, so a configuration's
        records (all below its sending domain) cost one call, and the names of a whole partition cost
        about one pass over the zone. After a page, the listing jumps to the next name not yet passed
        instead of reading the sets in between. Names outside the zone cannot be there: no call."""
        wanted = sorted({n for n in map(normalise_name, names) if is_within_zone(n, self.name)}, key=listing_key)
        if not wanted:
            return []
        keep = set(wanted)
        # One configuration's names, or a whole zone's (a sweep): the sentence names what was read.
        what = f"read the records at {wanted[0]}" if len(keep) <= 10 else f"list the records of the zone {self.name}"
        found: list[dict] = []
        position, start, pages = 0, {"StartRecordName": wanted[0]}, 0
        while True:
            if pages:
                self._route53.pause_between_pages()
            pages += 1
            answer = self._route53.call(
                what, "list_resource_record_sets",
                HostedZoneId=self.zone_id, MaxItems=str(LIST_PAGE), **start,
            )
            found.extend(s for s in answer["ResourceRecordSets"] if normalise_name(s["Name"]) in keep)
            if not answer.get("IsTruncated"):
                return found
            if not answer.get("NextRecordName"):
                raise ProviderError(f"Could not {what}: Route53 said there was more but not where it goes on.",
                                    provider=PROVIDER, transient=True)
            # Every name that sorts before the next page's first set has been listed (or is not there).
            next_name = normalise_name(answer["NextRecordName"])
            next_key = listing_key(next_name)
            while position < len(wanted) and listing_key(wanted[position]) < next_key:
                position += 1
            if position == len(wanted):
                return found
            previous = start
            if wanted[position] == next_name:  # the rest of this name's sets: continue exactly there
                start = {"StartRecordName": next_name, "StartRecordType": answer["NextRecordType"]}
                if answer.get("NextRecordIdentifier"):  # weighted, latency, … sets of one name and type
                    start["StartRecordIdentifier"] = answer["NextRecordIdentifier"]
            else:
                start = {"StartRecordName": wanted[position]}
            if start == previous:
                raise ProviderError(f"Could not {what}: Route53's listing did not move on from "
                                    f"{start['StartRecordName']}.", provider=PROVIDER, transient=True)
