"""Cloudflare: the only module that talks HTTP to Cloudflare's API v4. It fills the DNS-provider interface.

Every call goes through `Cloudflare.request`, which sends the partition's API token as a Bearer
header, waits out Cloudflare's rate limit a bounded number of times, and turns every other failure
into one ProviderError that says what failed and whether retrying can help. The token lives only in
the HTTP client's headers: never in the repr, a message or a log line. Writes go through the batch
endpoint, so an upsert or a delete is one all-or-nothing change. The Cloudflare behaviour relied on
here is written down, with its sources, in docs/providers/cloudflare.md (cited as #anchors).
"""

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

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
AUTH_CODES = frozenset({6003, 6111, 9106, 10000})  # a missing, malformed or refused token (#errors)
NOT_FOUND_CODES = frozenset({7003, 81044})  # no such zone id, no such record id (#errors)
MOVED = "moved"  # a zone whose registrar no longer points at Cloudflare: nobody is served its records (#listing-zones)
# The error_code of a request that got no answer within the timeout (Cloudflare's own codes are
# numbers): the health checks tell a provider that hangs from one that refuses by it.
TIMED_OUT = "timeout"
DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "ardamail-admin"}


def call_budget_seconds(timeout: float) -> float:
    """The longest one call can take: every attempt may use the timeout to connect, send and read,
    and the waits between attempts are capped."""
    return (RATE_LIMIT_RETRIES + 1) * 3 * timeout + RATE_LIMIT_RETRIES * MAX_WAIT_SECONDS


class _Op(NamedTuple):
    """One part of a batch: kind is "deletes", "puts" or "posts"; what says it in words."""

    kind: str
    body: dict
    what: str


class Cloudflare:
    """One Cloudflare account as one API token sees it (a partition's token: Zone:Read and DNS:Edit)."""

    def __init__(self, *, token: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 account_id: str = ""):
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id  # only create_zone needs it: a zone belongs to an account (#creating-zones)
        self._sleep = sleep
        self._zone_ids: dict[str, str] = {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={**DEFAULT_HEADERS, "Authorization": f"Bearer {token}"})

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
        tries = 0
        while True:
            response = self._send(method, path, operation, params, json)
            if response.status_code != 429:
                return _body_of(response, operation)
            tries += 1
            wait = _retry_after(response)
            if tries > RATE_LIMIT_RETRIES or (wait is not None and wait > MAX_WAIT_SECONDS):
                raise _rate_limited(response, operation, tries, wait)
            # A refused request was not carried out (#rate-limits), so sending it again is safe.
            self._sleep(BACKOFF_SECONDS * 2 ** (tries - 1) if wait is None else wait)

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

    def pages(self, path: str, params: dict, *, per_page: int, operation: str, metric: str) -> Iterator[dict]:
        """Every item of a paged listing (#listing-records): pages follow until result_info says the
        last was reached, or one comes back shorter than the page size Cloudflare says it used."""
        page = 1
        while True:
            body = self.request("GET", path, params={**params, "page": page, "per_page": per_page},
                                operation=operation, metric=metric)
            items = body.get("result") or []
            yield from items
            info = body.get("result_info") or {}
            if not items or (page >= info["total_pages"] if info.get("total_pages")
                             else len(items) < int(info.get("per_page") or per_page)):
                return
            page += 1

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
        body = self.request("POST", "/zones", json={"name": zone, "account": {"id": self.account_id}, "type": "full"},
                            operation=f"create the zone {zone}", metric="create_zone")
        return body["result"]["id"]

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
        zones = self.pages("/zones", {"name": zone}, per_page=ZONES_PAGE, operation=f"look up the zone {zone}",
                           metric="list_zones")
        return [z["id"] for z in zones if normalise_name(z.get("name", "")) == zone and z.get("status") != MOVED]

    def hosted_zone(self, name: str, *, zone_id: str = "") -> HostedZone | None:
        """The zone and the name servers Cloudflare assigned it, which the parent zone must list
        (#listing-zones). Cloudflare has no private zones."""
        zone_id = zone_id or self.find_zone(name)
        if not zone_id:
            return None
        try:
            body = self.request("GET", f"/zones/{zone_id}", operation=f"read the zone {zone_id}", metric="get_zone")
        except ProviderError as exc:
            if exc.not_found:
                return None
            raise
        zone = body.get("result") or {}
        servers = tuple(sorted(normalise_name(server) for server in zone.get("name_servers") or ()))
        return HostedZone(id=zone.get("id", zone_id), name=normalise_name(zone.get("name", "")), name_servers=servers)


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
        """Make each name+type hold exactly its values in one batch (#batch-changes): a record already
        there keeps its id (updated in place if its TTL or form differs), a missing one is created,
        an extra value deleted. Nothing to change, nothing is written."""
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
        """Delete whatever is at these names and types now, in one batch; nothing there, no call."""
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
        found = self._cloudflare.pages(f"/zones/{self.zone_id}/dns_records", params, per_page=RECORDS_PAGE,
                                       operation=what, metric="list_records")
        return [raw for raw in found if normalise_name(raw.get("name", "")) in wanted and raw.get("type") in types]

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
            self._cloudflare.request("POST", f"/zones/{zone_id}/dns_records/batch", json=body,
                                     operation=_describe(chunk), metric="batch_records")


def plan_upsert(zone_name: str, zone_id: str, records: list[DnsRecord]) -> list[PlannedCall]:
    """The calls `CloudflareZone.upsert` makes for these records: a zone lookup unless its id is
    known, one listing of what is there now, and a batch of what differs (#batch-changes)."""
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
                    f"create, update or delete what differs at {len(keys)} names and types, in one batch "
                    "(no call when nothing differs)"),
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
        words = words[:3] + [f"{len(words) - 3} more changes"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _body_of(response: httpx.Response, operation: str) -> dict:
    if not response.is_success:
        raise _error_from_response(response, operation)
    body = _json_object(response)
    if body is None:
        raise ProviderError(f"Cloudflare answered with something other than a JSON object while trying to "
                            f"{operation} (HTTP {response.status_code})", provider=PROVIDER, transient=False,
                            status=response.status_code)
    if body.get("success") is False:  # an error envelope may come with HTTP 200 (#errors)
        raise _error_from_response(response, operation)
    return body


def _error_from_response(response: httpx.Response, operation: str) -> ProviderError:
    status = response.status_code
    message, codes, refs = _envelope(response)
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


def _rate_limited(response: httpx.Response, operation: str, tries: int, wait: float | None) -> ProviderError:
    message, codes, refs = _envelope(response)
    if wait is not None and wait > MAX_WAIT_SECONDS:
        sentence = (f"Cloudflare is rate-limiting this partition's API token and asks to wait {math.ceil(wait)} "
                    f"seconds before trying to {operation} again")
    else:
        sentence = (f"Cloudflare was still rate-limiting this partition's API token after {tries} tries to "
                    f"{operation} (it allows 1,200 requests in 5 minutes per token)")
    return ProviderError(f"{sentence}; a later retry can succeed ({refs})", provider=PROVIDER, transient=True,
                         status=429, error_code=codes[0] if codes else None, provider_message=message)


def _envelope(response: httpx.Response) -> tuple[str, list[int], str]:
    """The envelope's error messages in one string (each with its error_chain), every code, and
    "HTTP 400, code 81057" (#errors)."""
    body = _json_object(response) or {}
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    texts, codes = [], []
    for error in errors:
        chain = [c for c in error.get("error_chain") or [] if isinstance(c, dict)]
        parts = [str(e["message"]) for e in (error, *chain) if e.get("message")]
        codes += [e["code"] for e in (error, *chain) if isinstance(e.get("code"), int)]
        if parts:
            texts.append(": ".join(parts))
    refs = f"HTTP {response.status_code}"
    if codes:
        refs += f", code{'s' if len(codes) > 1 else ''} {', '.join(map(str, codes))}"
    return "; ".join(texts), codes, refs


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (#rate-limits); None when absent or not a number of seconds."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _json_object(response: httpx.Response) -> dict | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
