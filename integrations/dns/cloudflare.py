"""Cloudflare: the only module that talks HTTP to Cloudflare's API v4. It fills the DNS-provider interface.

Every call goes through `Cloudflare.request`, which sends the partition's API token as a Bearer
header, waits out Cloudflare's rate limit a bounded number of times, and turns every other failure
(an answer of the wrong shape included) into one ProviderError that says what failed and whether
retrying can help. The token lives only in the HTTP client's headers: never in the repr, a message
or a log line (Cloudflare's own text is cleaned of it). Writes go through the batch endpoint in
batches of 200 records, each all-or-nothing: a change of up to 200 records is one transaction, a
larger one several. The Cloudflare behaviour relied on here is written down, with its sources, in
docs/providers/cloudflare.md (cited as #anchors).
"""

import math
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import quote

import httpx

from ardamail_admin import metrics
from integrations import BeforeWrite, PlannedCall
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

PROVIDER = "cloudflare"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
WRITABLE_TYPES = ("TXT", "CNAME", "MX", "NS")
ZONES_PAGE = 50  # the most zones one page of GET /zones holds (#listing-zones)
RECORDS_PAGE = 5_000_000  # the documented maximum per_page of GET …/dns_records: a zone in one page (#listing-records)
BATCH_MAX = 200  # records one batch may touch on the Free plan; higher plans allow 3,500 (#batch-changes)
# A 429 is waited out at most twice (#rate-limits). Cloudflare's Retry-After says when capacity is
# back; a longer wait than MAX_WAIT_SECONDS is left to the workflow's own retry, outside the lease.
RATE_LIMIT_RETRIES, BACKOFF_SECONDS, MAX_WAIT_SECONDS = 2, 1.0, 5.0
# Cloudflare blocks for five minutes (#rate-limits): a Retry-After beyond an hour is nonsense, and is
# taken as an hour rather than put in a sentence as a 309-digit number.
RETRY_AFTER_CAP = 3600.0
# No listing here needs more than one page (#listing-records): an answer that keeps saying "more"
# is wrong, and following it forever would hold the lease.
MAX_PAGES = 1_000
MESSAGE_MAX = 500  # characters of Cloudflare's own error text kept in a sentence (a body may be any size)
CODES_SHOWN = 5  # error codes named in a sentence; more are counted
REDACTED = "[redacted]"
AUTH_CODES = frozenset({6003, 6111, 9106, 10000})  # a missing, malformed or refused token (#errors)
NOT_FOUND_CODES = frozenset({7003, 81044})  # no such zone id, no such record id (#errors)
MOVED = "moved"  # a zone whose registrar no longer points at Cloudflare: nobody is served its records (#listing-zones)
# The error_code of a request that got no answer within the timeout (Cloudflare's own codes are
# numbers): the health checks tell a provider that hangs from one that refuses by it.
TIMED_OUT = "timeout"
DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "ardamail-admin"}


def call_budget_seconds(timeout: float, *, rate_limit_retries: int = RATE_LIMIT_RETRIES,
                        connect_timeout: float | None = None) -> float:
    """The longest one call can take: every attempt may use its timeouts to connect, send and read,
    and the waits between attempts are capped at MAX_WAIT_SECONDS."""
    attempt = (connect_timeout or timeout) + 2 * timeout
    return (rate_limit_retries + 1) * attempt + rate_limit_retries * MAX_WAIT_SECONDS


class _Op(NamedTuple):
    """One part of a batch: kind is "deletes", "puts" or "posts"; what says it in words."""

    kind: str
    body: dict
    what: str


class Cloudflare:
    """One Cloudflare account as one API token sees it (a partition's token: Zone:Read and DNS:Edit)."""

    def __init__(self, *, token: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 account_id: str = "", rate_limit_retries: int = RATE_LIMIT_RETRIES,
                 connect_timeout: float | None = None):
        """`rate_limit_retries` 0 gives up at the first 429 (the health checks: a page is waiting);
        `connect_timeout` bounds connecting alone, `timeout` every other phase."""
        if rate_limit_retries < 0:
            raise ValueError("rate_limit_retries cannot be negative")
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id  # only create_zone needs it: a zone belongs to an account (#creating-zones)
        self.rate_limit_retries = rate_limit_retries
        self._sleep = sleep
        self._zone_ids: dict[str, str] = {}
        self._http = httpx.Client(base_url=self.base_url, transport=transport,
                                  timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
                                  headers={**DEFAULT_HEADERS, "Authorization": f"Bearer {_checked_token(token)}"})

    def __repr__(self):
        return f"Cloudflare(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # HTTP plumbing

    def request(self, method: str, path: str, *, operation: str, metric: str, params: dict | None = None,
                json: dict | None = None) -> dict:
        """One call, 429s waited out included; `metric` names it for ardamail_admin.metrics (the
        operation sentence names zones and records: too many label values)."""
        try:
            with metrics.provider_call(PROVIDER, metric):
                return self._attempts(method, path, operation, params, json)
        except ProviderError as exc:
            if exc.not_found:
                self._zone_ids.clear()  # the zone may have been deleted and created again under a new id
            raise

    def _attempts(self, method, path, operation, params, json) -> dict:
        token = self._http.headers["Authorization"].removeprefix("Bearer ")  # to clean Cloudflare's text of it
        tries = 0
        while True:
            response = self._send(method, path, operation, params, json)
            if response.status_code != 429:
                return _body_of(response, operation, token)
            tries += 1
            wait = _retry_after(response)
            if tries > self.rate_limit_retries or (wait is not None and wait > MAX_WAIT_SECONDS):
                raise _rate_limited(response, operation, tries, wait, token)
            # A refused request was not carried out (#rate-limits), so sending it again is safe.
            self._sleep(min(BACKOFF_SECONDS * 2 ** (tries - 1), MAX_WAIT_SECONDS) if wait is None else wait)

    def _send(self, method, path, operation, params, json) -> httpx.Response:
        # `from None`: the httpx exception holds the request, and with it the Authorization header.
        try:
            return self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            raise ProviderError(f"Cloudflare did not answer in time while trying to {operation}", provider=PROVIDER,
                                transient=True, error_code=TIMED_OUT) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"Could not reach Cloudflare at {self.base_url} to {operation}: {type(exc).__name__}",
                                provider=PROVIDER, transient=True) from None
        except httpx.RequestError as exc:  # an answer httpx cannot decode (a broken gzip body, say)
            raise ProviderError(f"Cloudflare's answer could not be read while trying to {operation}: "
                                f"{type(exc).__name__}", provider=PROVIDER, transient=False) from None

    def pages(self, path: str, params: dict, *, per_page: int, operation: str, metric: str) -> Iterator[dict]:
        """Every item of a paged listing (#listing-records): pages follow until result_info says the
        last was reached, or one comes back shorter than the page size Cloudflare says it used; at
        most MAX_PAGES of them."""
        for page in range(1, MAX_PAGES + 1):
            body = self.request("GET", path, params={**params, "page": page, "per_page": per_page},
                                operation=operation, metric=metric)
            items, info = _page_of(body, operation)
            yield from items
            if not items or _last_page(info, page, len(items), per_page, operation):
                return
        raise ProviderError(f"Cloudflare still had more to list after {MAX_PAGES:,} pages while trying to {operation}; "
                            "no listing here is that long, so its answers are taken as wrong", provider=PROVIDER,
                            transient=False)

    # zones

    def zone(self, name: str, *, zone_id: str = "") -> "CloudflareZone":
        return CloudflareZone(self, normalise_name(name), zone_id)

    def zone_id_for(self, zone_name: str) -> str:
        zone = normalise_name(zone_name)
        zone_id = self.find_zone(zone)
        if zone_id is None:
            raise ProviderError(f"No Cloudflare zone named {zone} is visible to this partition's API token.",
                                provider=PROVIDER, transient=False)
        return zone_id

    def create_zone(self, name: str) -> str:
        zone = normalise_name(name)
        existing = self.find_zone(zone)
        if existing:
            return existing
        if not self.account_id:
            raise ProviderError(f"Cannot create the Cloudflare zone {zone}: no Cloudflare account id was given.",
                                provider=PROVIDER, transient=False)
        operation = f"create the zone {zone}"
        body = self.request("POST", "/zones", json={"name": zone, "account": {"id": self.account_id}, "type": "full"},
                            operation=operation, metric="create_zone")
        return _text(_object(body.get("result"), "a new zone", operation), "id", "a new zone", operation)

    def find_zone(self, name: str) -> str | None:
        """The id of the zone of exactly this name (the first, should there be several: the health
        checks report that); only found ids are cached, so a zone created later is still found."""
        zone = normalise_name(name)
        cached = self._zone_ids.get(zone)
        if cached is not None:
            return cached
        ids = self.find_zones(zone)
        if not ids:
            return None
        self._zone_ids[zone] = ids[0]
        return ids[0]

    def find_zones(self, name: str) -> list[str]:
        """The ids of every zone of exactly this name the token sees, whatever the account (one token
        may reach several), except moved ones (#listing-zones)."""
        zone = normalise_name(name)
        operation = f"look up the zone {zone}"
        zones = self.pages("/zones", {"name": zone}, per_page=ZONES_PAGE, operation=operation, metric="list_zones")
        ids = []
        for found in zones:
            found_name, found_id = _text(found, "name", "a zone", operation), _text(found, "id", "a zone", operation)
            if normalise_name(found_name) == zone and found.get("status") != MOVED:
                ids.append(found_id)
        return ids

    def hosted_zone(self, name: str, *, zone_id: str = "") -> HostedZone | None:
        """The zone and the name servers Cloudflare assigned it, which the parent zone must list
        (#listing-zones). Cloudflare has no private zones."""
        zone_id = zone_id or self.find_zone(name)
        if not zone_id:
            return None
        operation = f"read the zone {zone_id}"
        try:
            body = self.request("GET", f"/zones/{_segment(zone_id)}", operation=operation, metric="get_zone")
        except ProviderError as exc:
            if exc.not_found:
                return None
            raise
        zone = _object(body.get("result"), "a zone", operation)
        servers = zone.get("name_servers") or []
        if not isinstance(servers, list) or not all(isinstance(server, str) for server in servers):
            raise _malformed("a zone whose name_servers are not a list of names", operation)
        return HostedZone(id=_text(zone, "id", "a zone", operation),
                          name=normalise_name(_text(zone, "name", "a zone", operation)),
                          name_servers=tuple(sorted(map(normalise_name, servers))))


class CloudflareZone:
    """One zone; its id is looked up by name once, unless the partition names it."""

    provider = PROVIDER

    def __init__(self, cloudflare: Cloudflare, name: str, zone_id: str = ""):
        self._cloudflare = cloudflare
        self.name = name
        self._zone_id = zone_id

    @property
    def zone_id(self) -> str:
        return self._zone_id or self._cloudflare.zone_id_for(self.name)

    def upsert(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Make each name+type hold exactly its values, in batches of 200 changes, each all-or-nothing
        (#batch-changes): a record already there keeps its id (updated in place if its TTL or form
        differs), a missing one is created, an extra value deleted. Up to 200 changes are one
        transaction; if a later batch of a larger change fails, the earlier ones stay, and running
        the upsert again completes it. Nothing to change, nothing is written."""
        require_within_zone(records, self.name)
        desired: dict[tuple[str, str], dict[str, dict]] = {}
        for record in records:  # every record is checked before any call
            body = _api_record(record)
            desired.setdefault((body["name"], body["type"]), {}).setdefault(_logical(body).value, body)
        if not desired:
            return
        names, types = {name for name, _ in desired}, {rtype for _, rtype in desired}
        self._converge(lambda: _changes(desired, _by_key(self._records_at(names, types))), before_write)

    def delete(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Delete whatever is at these names and types now, in batches of 200, each all-or-nothing;
        nothing there, no call."""
        require_within_zone(records, self.name)
        wanted = {(normalise_name(r.name), r.type) for r in records}

        def plan() -> list[_Op]:
            found = self._records_at({name for name, _ in wanted}, {rtype for _, rtype in wanted})
            return [_delete_op(raw) for raw in found if _key(raw) in wanted]

        if wanted:
            self._converge(plan, before_write)

    def read(self, names: Iterable[str], *, types: Iterable[str] = READ_TYPES) -> list[DnsRecord]:
        return [_logical(raw) for raw in self._records_at(names, types)]

    def _records_at(self, names: Iterable[str], types: Iterable[str]) -> list[dict]:
        """Raw records of these types exactly at these names, from one listing: the names' common
        parent below the zone narrows it (a configuration's records), else the whole zone is read in
        pages of the largest size (a partition's sweep). Names outside the zone cannot be there."""
        wanted = {n for n in map(normalise_name, names) if is_within_zone(n, self.name)}
        types = set(types)
        if not wanted or not types:
            return []
        params, what = _listing(wanted, self.name)
        if len(types) == 1:
            params["type"] = next(iter(types))
        found = self._cloudflare.pages(f"/zones/{_segment(self.zone_id)}/dns_records", params, per_page=RECORDS_PAGE,
                                       operation=what, metric="list_records")
        return [raw for raw in found if _wanted(raw, wanted, types, what)]

    def _converge(self, plan: Callable[[], list[_Op]], before_write: BeforeWrite | None) -> None:
        ops = plan()
        try:
            self._write(ops, before_write)
        except ProviderError as exc:
            # A record someone else deleted between our read and the batch fails the whole batch (one
            # transaction, #batch-changes): read again and plan once more.
            if not exc.not_found:
                raise
            self._write(plan(), before_write)

    def _write(self, ops: list[_Op], before_write: BeforeWrite | None) -> None:
        if not ops:
            return  # nothing differs: no batch, and no before_write
        zone_id = self.zone_id  # any lookup first: the write is the only call after before_write
        for start in range(0, len(ops), BATCH_MAX):
            chunk = ops[start:start + BATCH_MAX]
            body: dict[str, list[dict]] = {}
            for op in chunk:  # Cloudflare runs deletes, then puts, then posts (#batch-changes)
                body.setdefault(op.kind, []).append(op.body)
            if before_write is not None:
                before_write()
            self._cloudflare.request("POST", f"/zones/{_segment(zone_id)}/dns_records/batch", json=body,
                                     operation=_describe(chunk), metric="batch_records")


def plan_upsert(zone_name: str, zone_id: str, records: list[DnsRecord]) -> list[PlannedCall]:
    """The calls `CloudflareZone.upsert` makes for these records: a zone lookup unless its id is
    known, one listing of what is there now, and batches of what differs (#batch-changes)."""
    zone = normalise_name(zone_name)
    require_within_zone(records, zone)
    names = {normalise_name(r.name) for r in records}
    if not names:
        return []
    where, keys = zone_id or "{zone_id}", {(normalise_name(r.name), r.type) for r in records}
    calls = [] if zone_id else [PlannedCall(PROVIDER, "GET /zones", f"find the zone {zone}")]
    return calls + [
        PlannedCall(PROVIDER, f"GET /zones/{where}/dns_records", _listing(names, zone)[1]),
        PlannedCall(PROVIDER, f"POST /zones/{where}/dns_records/batch",
                    f"create, update or delete what differs at {len(keys)} names and types, in batches of "
                    f"{BATCH_MAX}, each all-or-nothing (no call when nothing differs)"),
    ]


def _listing(names: set[str], zone: str) -> tuple[dict, str]:
    """The name filter of the one listing that covers these names, and what it reads in words."""
    if len(names) == 1:
        (name,) = names
        return {"name.exact": name}, f"read the records at {name}"
    labels = [name.split(".")[::-1] for name in names]
    common = []
    for column in zip(*labels):
        if len(set(column)) > 1:
            break
        common.append(column[0])
    parent = ".".join(reversed(common))
    if parent != zone:  # every name is inside the zone, so their common parent is too
        # A suffix match on the text ("xorders.…" too): what is read is filtered by exact name.
        return {"name.endswith": parent}, f"read the records at and below {parent}"
    return {}, f"list the records of the zone {zone}"


def _api_record(record: DnsRecord) -> dict:
    """A record as Cloudflare takes it: never proxied (only A, AAAA and CNAME could be, and a proxied
    CNAME would answer with Cloudflare's addresses, #proxied), TTL as given (#ttl)."""
    name, rtype = normalise_name(record.name), record.type
    body = {"type": rtype, "name": name, "ttl": record.ttl, "proxied": False}
    if rtype == "TXT":
        if any(not " " <= char <= "~" for char in record.value):
            raise ProviderError(f"Cannot write the TXT record {name}: Cloudflare takes only printable ASCII "
                                "in TXT values.", provider=PROVIDER, transient=False)
        body["content"] = quote_txt(record.value)  # quoted strings of at most 255 bytes (#txt-content)
    elif rtype == "MX":
        body["content"], body["priority"] = _mx(name, record.value)  # priority is its own field (#mx-records)
    elif rtype in ("CNAME", "NS"):
        body["content"] = normalise_name(record.value)
    else:
        raise ProviderError(f"Cannot write {name}: {rtype} records are not written to Cloudflare here "
                            f"(only {', '.join(WRITABLE_TYPES)}).", provider=PROVIDER, transient=False)
    return body


def _mx(name: str, value: str) -> tuple[str, int]:
    try:
        priority, host = split_mx(value)
    except ValueError:
        priority, host = -1, ""
    if not 0 <= priority <= 65535 or not host:
        raise ProviderError(f"Cannot write the MX record {name}: {value!r} is not '<priority> <host>' "
                            "(as '10 mx.example.org').", provider=PROVIDER, transient=False)
    return host, priority


def _logical(raw: dict) -> DnsRecord:
    """A Cloudflare record in normalised form; TXT content is read quoted or not (#txt-content)."""
    rtype, content = raw.get("type", ""), str(raw.get("content", ""))
    if rtype == "TXT":
        value = unquote_txt(content)
    elif rtype == "MX":
        value = mx_value(int(raw.get("priority") or 0), content)
    elif rtype in ("CNAME", "NS"):
        value = normalise_name(content)
    else:
        value = content
    return DnsRecord(name=normalise_name(raw.get("name", "")), type=rtype, value=value, ttl=int(raw.get("ttl") or 0))


def _key(raw: dict) -> tuple[str, str]:
    return normalise_name(raw.get("name", "")), raw.get("type", "")


def _by_key(raws: list[dict]) -> dict[tuple[str, str], list[dict]]:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for raw in raws:
        grouped.setdefault(_key(raw), []).append(raw)
    return grouped


def _changes(desired: dict[tuple[str, str], dict[str, dict]], current: dict[tuple[str, str], list[dict]]) -> list[_Op]:
    """What makes each name+type hold exactly its desired values: deletes, updates in place (puts),
    creations (posts). A value already there is matched first, so its record keeps its id."""
    deletes, puts, posts = [], [], []
    for (name, rtype), wanted in desired.items():
        have, missing = list(current.get((name, rtype), ())), []
        for value, body in wanted.items():
            same = next((raw for raw in have if _logical(raw).value == value), None)
            if same is None:
                missing.append(body)
                continue
            have.remove(same)
            if any(same.get(field) != body[field] for field in body if field != "name"):
                puts.append(_Op("puts", {"id": same["id"], **body}, f"update the {rtype} record {name}"))
        for body in missing:
            if have:  # reuse a record whose value is no longer wanted
                puts.append(_Op("puts", {"id": have.pop(0)["id"], **body}, f"update the {rtype} record {name}"))
            else:
                posts.append(_Op("posts", body, f"create the {rtype} record {name}"))
        deletes.extend(_delete_op(raw) for raw in have)
    return deletes + puts + posts


def _delete_op(raw: dict) -> _Op:
    name, rtype = _key(raw)
    return _Op("deletes", {"id": raw["id"]}, f"delete the {rtype} record {name}")


def _describe(ops: list[_Op]) -> str:
    """"create the TXT record a, update the CNAME record b and delete …" (the first three, then a count)."""
    words = list(dict.fromkeys(op.what for op in ops))
    if len(words) > 3:
        rest = sum(op.what not in words[:3] for op in ops)  # changes, not descriptions: two alike count twice
        words = words[:3] + [f"{rest} more change{'s' * (rest != 1)}"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _body_of(response: httpx.Response, operation: str, token: str) -> dict:
    if not response.is_success:
        raise _error_from_response(response, operation, token)
    body = _json_object(response)
    if body is None:
        raise ProviderError(f"Cloudflare answered with something other than a JSON object while trying to "
                            f"{operation} (HTTP {response.status_code})", provider=PROVIDER, transient=False,
                            status=response.status_code)
    if body.get("success") is False:  # an error envelope may come with HTTP 200 (#errors)
        raise _error_from_response(response, operation, token)
    return body


def _error_from_response(response: httpx.Response, operation: str, token: str) -> ProviderError:
    status = response.status_code
    message, codes, refs = _envelope(response, token)
    if status in (401, 403) or AUTH_CODES.intersection(codes):
        return ProviderError(
            f"Cloudflare refused this partition's API token while trying to {operation}: the token is wrong, "
            f"expired or revoked, or lacks the Zone:Read and DNS:Edit permissions for this zone. Cloudflare said: "
            f"{message or 'nothing more'} ({refs})",
            provider=PROVIDER, transient=False, status=status, error_code=codes[0] if codes else None,
            provider_message=message,
        )
    detail = f": {message}" if message else ""
    return ProviderError(
        f"Cloudflare could not {operation}{detail} ({refs})",
        provider=PROVIDER,
        transient=status == 429 or status >= 500,  # rate limit or Cloudflare's own trouble
        status=status,
        error_code=codes[0] if codes else None,
        provider_message=message,
        not_found=status == 404 or bool(NOT_FOUND_CODES.intersection(codes)),
    )


def _rate_limited(response: httpx.Response, operation: str, tries: int, wait: float | None,
                  token: str) -> ProviderError:
    message, codes, refs = _envelope(response, token)
    if wait and (wait > MAX_WAIT_SECONDS or tries == 1):
        sentence = (f"Cloudflare is rate-limiting this partition's API token and asks to wait {_duration(wait)} "
                    f"before trying to {operation} again")
    elif tries == 1:  # no retries allowed (the health checks)
        sentence = (f"Cloudflare is rate-limiting this partition's API token and refused to {operation} "
                    "(it allows 1,200 requests in 5 minutes per token)")
    else:
        sentence = (f"Cloudflare was still rate-limiting this partition's API token after {tries} tries to "
                    f"{operation} (it allows 1,200 requests in 5 minutes per token)")
    return ProviderError(f"{sentence}; a later retry can succeed ({refs})", provider=PROVIDER, transient=True,
                         status=429, error_code=codes[0] if codes else None, provider_message=message)


def _envelope(response: httpx.Response, token: str) -> tuple[str, list[int], str]:
    """The envelope's error messages in one string (each with its error_chain), cleaned of the token
    (a body may echo the Authorization header) and clipped; every code; and "HTTP 400, code 81057" (#errors)."""
    body = _json_object(response) or {}
    texts, codes = [], []
    for error in _objects(body.get("errors")):
        chain = (error, *_objects(error.get("error_chain")))
        parts = [e["message"] for e in chain if isinstance(e.get("message"), str) and e["message"]]
        codes += [e["code"] for e in chain if _is_code(e.get("code"))]
        if parts:
            texts.append(": ".join(parts))
    refs = f"HTTP {response.status_code}"
    if codes:
        shown = ", ".join(map(str, codes[:CODES_SHOWN]))
        more = f" and {len(codes) - CODES_SHOWN} more" if len(codes) > CODES_SHOWN else ""
        refs += f", code{'s' if len(codes) > 1 else ''} {shown}{more}"
    return _clip(_redact("; ".join(texts), token)), codes, refs


def _objects(value) -> list[dict]:
    """The JSON objects in what should be a list of them; anything else holds none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_code(value) -> bool:
    """Cloudflare's error codes are numbers of a few digits (#errors); anything else is not named."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9


def _redact(text: str, token: str) -> str:
    for secret in (f"Bearer {token}", token, quote(token, safe="")):
        text = text.replace(secret, REDACTED)
    return text


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 1] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, at most RETRY_AFTER_CAP (#rate-limits): a number of seconds or an
    HTTP-date (RFC 9110 §10.2.3), counted from the answer's Date when it has one; None when absent,
    negative or neither."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        when, now = _http_date(value), _http_date(response.headers.get("Date", "")) or datetime.now(UTC)
        seconds = max(0.0, (when - now).total_seconds()) if when else math.nan
    return min(seconds, RETRY_AFTER_CAP) if seconds >= 0 else None  # NaN is not >= 0


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # an HTTP-date is in GMT


def _duration(seconds: float) -> str:
    if seconds >= RETRY_AFTER_CAP:
        return "an hour or more"
    whole = math.ceil(seconds)
    return "1 second" if whole == 1 else f"{whole} seconds"


def _json_object(response: httpx.Response) -> dict | None:
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None
    return body if isinstance(body, dict) else None


# answers of the wrong shape (#errors): each is a permanent ProviderError with a sentence, never a crash


def _checked_token(token: str) -> str:
    """The token without the whitespace a secret file leaves around it. A Cloudflare API token is
    one word of printable ASCII; anything else would fail inside httpx (UnicodeEncodeError, an
    illegal header) in the middle of a call, so it is refused here, and never shown."""
    token = token.strip() if isinstance(token, str) else ""
    if not token or not all("!" <= char <= "~" for char in token):
        reason = "it is empty" if not token else "it holds spaces, control characters or characters other than ASCII"
        raise ProviderError(f"The partition's Cloudflare token is not a valid API token: {reason}. Check the "
                            "partition's Cloudflare token secret.", provider=PROVIDER, transient=False)
    return token


def _segment(zone_id: str) -> str:
    """A zone id as one path segment, whatever it holds: "../accounts" must not leave /zones."""
    return quote(zone_id, safe="").replace(".", "%2E")


def _malformed(what: str, operation: str) -> ProviderError:
    return ProviderError(f"Cloudflare answered with {what} while trying to {operation}", provider=PROVIDER,
                         transient=False)


def _object(value, what: str, operation: str) -> dict:
    if not isinstance(value, dict):
        raise _malformed(f"{what} that is not a JSON object", operation)
    return value


def _text(item: dict, field: str, what: str, operation: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise _malformed(f"{what} with no usable {field}", operation)
    return value


def _whole(value) -> int | None:
    """A JSON whole number (3 or 3.0) as an int; None for a string, a bool, 2.5, NaN or infinity."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else None


def _page_of(body: dict, operation: str) -> tuple[list[dict], dict]:
    items, info = body.get("result"), body.get("result_info") or {}
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _malformed("a listing whose result is not a list of objects", operation)
    if not isinstance(info, dict):
        raise _malformed("a listing whose result_info is not a JSON object", operation)
    return items, info


def _last_page(info: dict, page: int, count: int, asked: int, operation: str) -> bool:
    """Whether this page ends the listing: total_pages says so, or, without it, the page is shorter
    than the per_page Cloudflare says it used (else the one asked for)."""
    total, size = (_count(info, field, operation) for field in ("total_pages", "per_page"))
    return page >= total if total else count < (size or asked)


def _count(info: dict, field: str, operation: str) -> int:
    """A whole number of result_info; 0 when absent."""
    value = info.get(field)
    number = 0 if value is None else _whole(value)
    if number is None or number < 0:
        raise _malformed(f"a listing whose result_info.{field} is not a whole number", operation)
    return number


def _wanted(raw: dict, names: set[str], types: set[str], operation: str) -> bool:
    """Whether a listed record is at one of these names and types; one that is must have what
    _logical and _changes read: an id, text content, a TTL and (MX) a priority that are whole numbers."""
    name, rtype = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not isinstance(rtype, str):
        raise _malformed("a DNS record with no usable name or type", operation)
    if normalise_name(name) not in names or rtype not in types:
        return False
    what = f"the {rtype} record {normalise_name(name)}"
    if not isinstance(raw.get("id"), str) or not raw["id"] or not isinstance(raw.get("content"), str):
        raise _malformed(f"{what} with no usable id or content", operation)
    ttl, priority = _whole(raw.get("ttl") or 0), _whole(raw.get("priority") or 0)
    if ttl is None or not 0 <= ttl < 2**31 or (rtype == "MX" and (priority is None or not 0 <= priority <= 65535)):
        raise _malformed(f"{what} whose TTL or priority is not a whole number in range", operation)
    return True
