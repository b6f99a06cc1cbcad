"""A Cloudflare API v4 stand-in for local mode and tests: a plain WSGI app that checks DNS requests
the way Cloudflare documents them.

Tests mount it with `httpx.WSGITransport(app=sim)` or serve it on 127.0.0.1 with
`localdev.serving.serve()`; `manage.py cloudflare_simulator` runs it for local mode. Its URLs start
with /client/v4, like Cloudflare's. The facts it follows are in docs/providers/cloudflare.md.

What it fakes:
- Bearer-token authentication: each configured token sees only the zones it is given (None: every
  zone, and it may create zones). A missing or malformed Authorization header is refused with the
  codes Cloudflare is reported to use (400: 9106, 6003/6111); an unknown token, or a zone the token
  may not touch, with 403/10000 "Authentication error".
- Zones: GET /zones (name and status filters, pages of at most 50), GET /zones/{id}, POST /zones
  (account.id required); new zones are "pending" with two made-up *.ns.cloudflare.com servers.
- DNS records of types A, AAAA, CNAME, MX, NS and TXT: list (name, name.exact, name.endswith,
  name.startswith, name.contains and type filters; page/per_page up to 5,000,000; result_info),
  create, read, overwrite (PUT), patch and delete by id, and POST …/dns_records/batch: deletes,
  patches, puts, posts run in that order, all or nothing, at most `batch_limit` records.
- Cloudflare's documented checks: TTL 1 or 60..86400 (9021), only A/AAAA/CNAME proxied (9004),
  printable ASCII TXT (9051), TXT strings over 255 bytes split into several, MX priority required,
  a CNAME not beside an A/AAAA/CNAME (81053/81054), NS alone at its name, identical records refused
  (81057 on create, 81058 on update), unknown ids (81044, 404), unknown zones (7003, 404),
  32-hex ids, the error envelope with success false and result null.
- The rate limit: once `rate_limit` requests came within its window, every request is refused for
  the next whole window (Cloudflare blocks all calls for five minutes): HTTP 429, code 10100, and
  Retry-After counting down the seconds left (rounded up, from 300 by default), on an injectable clock.
  One count for all tokens (Cloudflare counts per user).

Where it is stricter than Cloudflare, on purpose: unquoted TXT content is refused (Cloudflare's
docs say it must be quoted, but its API stores it and only the dashboard warns); a CNAME is refused
beside any other record (Cloudflare itself only refuses A/AAAA/CNAME, RFC 1034 refuses all; turn
off with cname_alone=False); a record name outside the zone is refused (what Cloudflare does is
not documented). Answers whose code Cloudflare does not document carry code 1004 with an
explanatory error_chain message and no chain code, or SIM_CODE for request errors.

What it does not fake: other record types and record settings, comments, tags, proxying itself,
zone activation, propagation, the legacy X-Auth-Key/X-Auth-Email headers, account-owned token
verification, plan differences (batch_limit is one number), or anything beyond DNS records and zones.
"""

import copy
import ipaddress
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.client import responses
from urllib.parse import parse_qsl

PREFIX = "/client/v4"
DEFAULT_ACCOUNT_ID = "0" * 31 + "1"
TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT")
PROXIABLE = ("A", "AAAA", "CNAME")
SIM_CODE = 9999  # chosen here: Cloudflare documents no code for this answer
RECORDS_PER_PAGE_MAX, ZONES_PER_PAGE_MAX = 5_000_000, 50
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
QUOTED = re.compile(r'\s*"((?:[^"\\]|\\.)*)"')
ID = re.compile(r"[0-9a-f]{32}")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, *, chain: Iterable[dict] = (), extra: Iterable[dict] = (),
                 headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        error = {"code": code, "message": message}
        if chain:
            error["error_chain"] = list(chain)
        self.status, self.errors, self.headers = status, [error, *extra], list(headers)


def invalid(message: str, code: int | None = None) -> ApiError:
    """A rejected record: 1004 "DNS Validation Error" with the reason in its error_chain."""
    link = {"message": message} if code is None else {"code": code, "message": message}
    return ApiError(400, 1004, "DNS Validation Error", chain=[link])


def not_found_zone(path: str) -> ApiError:
    return ApiError(404, 7003, f"Could not route to {path}, perhaps your object identifier is invalid?",
                    extra=[{"code": 7000, "message": "No route for that URI"}])


class CloudflareSimulator:
    def __init__(self, *, tokens: dict[str, Iterable[str] | None], account_id: str = DEFAULT_ACCOUNT_ID,
                 rate_limit: tuple[int, float] | None = (1200, 300.0), clock: Callable[[], float] = time.monotonic,
                 batch_limit: int = 200, cname_alone: bool = True):
        self._tokens = {t: (None if zones is None else {z.lower().rstrip(".") for z in zones})
                        for t, zones in tokens.items()}
        self.account_id = account_id
        self.rate_limit, self._clock = rate_limit, clock
        self.batch_limit, self.cname_alone = batch_limit, cname_alone
        self.timeout_by_sleeping = False  # set by localdev.serving.serve(); nothing here sleeps
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._zones: dict[str, dict] = {}
            self._records: dict[str, dict[str, dict]] = {}
            self._recent: deque[float] = deque()
            self._blocked_until: float | None = None  # the clock's time the rate-limit block ends
            self._faults: list[dict] = []
            self.calls: list[tuple[str, str, str]] = []  # (method, path, query) of every request

    def add_zone(self, name: str, *, status: str = "active") -> str:
        """Create a zone directly (local mode's start, tests); returns its id."""
        with self._lock:
            return self._new_zone(name.lower().rstrip("."), status)["id"]

    def grant(self, token: str, zone: str) -> None:
        """Let a zone-limited token see one more zone."""
        with self._lock:
            self._tokens.setdefault(token, set()).add(zone.lower().rstrip("."))

    def inject_fault(self, *, method: str, path_pattern: str, status: int, code: int = SIM_CODE,
                     message: str = "simulated failure", times: int = 1) -> None:
        """Answer the next `times` requests matching method and `re.search(path_pattern, path)` with
        this status and error (a 5xx, say), without carrying them out."""
        with self._lock:
            self._faults.append({"method": method.upper(), "pattern": re.compile(path_pattern), "status": status,
                                 "code": code, "message": message, "times": times})

    def state(self) -> dict:
        """Zones and records as stored, for test assertions."""
        with self._lock:
            return copy.deepcopy({"zones": list(self._zones.values()),
                                  "records": [r for rs in self._records.values() for r in rs.values()]})

    # WSGI

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"].upper(), environ.get("PATH_INFO") or "/"
        query = environ.get("QUERY_STRING", "")
        headers = [("Content-Type", "application/json")]
        try:
            with self._lock:
                self.calls.append((method, path, query))
                self._check_fault(method, path)
                self._check_rate()
                token = self._authenticate(environ.get("HTTP_AUTHORIZATION"))
                status, body = self._dispatch(method, path, dict(parse_qsl(query)), self._read_json(environ), token)
        except ApiError as exc:
            status, body = exc.status, {"result": None, "success": False, "errors": exc.errors, "messages": []}
            headers += exc.headers
        payload = json.dumps(body).encode()
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {responses.get(status, 'Unknown')}", headers)
        return [payload]

    def _check_fault(self, method, path):
        for fault in self._faults:
            if fault["method"] == method and fault["pattern"].search(path):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                raise ApiError(fault["status"], fault["code"], fault["message"])

    def _check_rate(self):
        """Over the limit, all calls are blocked for the whole window, not until the oldest request
        ages out (docs/providers/cloudflare.md#rate-limits); after the block, capacity is back in full."""
        if self.rate_limit is None:
            return
        limit, window = self.rate_limit
        now = self._clock()
        if self._blocked_until is not None and now >= self._blocked_until:
            self._blocked_until = None
            self._recent.clear()
        while self._recent and self._recent[0] <= now - window:
            self._recent.popleft()
        if self._blocked_until is None and len(self._recent) >= limit:
            self._blocked_until = now + window
        if self._blocked_until is not None:
            wait = max(1, math.ceil(self._blocked_until - now))
            raise ApiError(429, 10100, f"More than {limit} requests per {window:g} seconds reached. Please wait "
                           "and consider throttling your request speed", headers=[("Retry-After", str(wait))])
        self._recent.append(now)

    def _authenticate(self, header: str | None) -> str:
        if not header:
            raise ApiError(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise ApiError(400, 6003, "Invalid request headers",
                           chain=[{"code": 6111, "message": "Invalid format for Authorization header"}])
        if token not in self._tokens:
            raise ApiError(403, 10000, "Authentication error")
        return token

    def _read_json(self, environ):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ApiError(400, SIM_CODE, "Content-Length is not a number") from None
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise ApiError(400, SIM_CODE, "Malformed JSON in request body") from None

    def _dispatch(self, method, path, query, body, token):
        if not path.startswith(PREFIX + "/"):
            raise ApiError(404, 7000, "No route for that URI")
        parts = path[len(PREFIX) + 1:].strip("/").split("/")
        if parts[0] != "zones" or len(parts) > 4 or (len(parts) > 2 and parts[2] != "dns_records"):
            raise ApiError(404, 7000, "No route for that URI")
        if len(parts) == 1:
            if method == "GET":
                return self._list_zones(token, query)
            if method == "POST":
                return 200, self._envelope(self._create_zone(token, body))
            raise ApiError(405, SIM_CODE, "Method not allowed for this route")
        zone = self._zone_for(token, parts[1], path)
        routes = {(2, "GET"): lambda: self._public_zone(zone),
                  (3, "GET"): lambda: self._list_records(zone, query),
                  (3, "POST"): lambda: self._create(zone, body)}
        if len(parts) == 4 and parts[3] == "batch" and method == "POST":
            return 200, self._envelope(self._batch(zone, body))
        if len(parts) == 4 and method in ("GET", "PUT", "PATCH", "DELETE"):
            routes[(4, method)] = lambda: self._by_id(zone, parts[3], method, body)
        handler = routes.get((len(parts), method))
        if handler is None:
            raise ApiError(405, SIM_CODE, "Method not allowed for this route")
        answer = handler()
        return answer if isinstance(answer, tuple) else (200, self._envelope(answer))

    @staticmethod
    def _envelope(result, info=None):
        body = {"result": result, "success": True, "errors": [], "messages": []}
        if info is not None:
            body["result_info"] = info
        return body

    # zones

    def _visible(self, token, zone):
        allowed = self._tokens[token]
        return allowed is None or zone["name"] in allowed

    def _zone_for(self, token, zone_id, path):
        zone = self._zones.get(zone_id)
        if zone is None:
            raise not_found_zone(path)
        if not self._visible(token, zone):
            raise ApiError(403, 10000, "Authentication error")
        return zone

    def _new_zone(self, name, status):
        if not HOSTNAME.match(name):
            raise ApiError(400, SIM_CODE, "This zone name is not valid")
        zone_id = uuid.uuid4().hex
        now = _now()
        label = name.split(".")[0][:8] or "zone"
        self._zones[zone_id] = {
            "id": zone_id, "name": name, "status": status, "paused": False, "type": "full",
            "name_servers": sorted(f"{label}-{i}.ns.cloudflare.com" for i in (1, 2)),
            "account": {"id": self.account_id, "name": "Simulated account"},
            "created_on": now, "modified_on": now, "activated_on": now if status == "active" else None,
        }
        self._records[zone_id] = {}
        return self._zones[zone_id]

    def _public_zone(self, zone):
        return copy.deepcopy(zone)

    def _list_zones(self, token, query):
        page, per_page = _paging(query, default=20, maximum=ZONES_PER_PAGE_MAX)
        name, status = query.get("name", "").lower().rstrip("."), query.get("status")
        zones = [z for z in self._zones.values() if self._visible(token, z)
                 and (not name or z["name"] == name) and (not status or z["status"] == status)]
        zones.sort(key=lambda z: z["name"])
        return 200, self._envelope(*_page_of([copy.deepcopy(z) for z in zones], page, per_page))

    def _create_zone(self, token, body):
        if self._tokens[token] is not None:
            raise ApiError(403, 10000, "Authentication error")
        body = body if isinstance(body, dict) else {}
        account = body.get("account") if isinstance(body.get("account"), dict) else {}
        if not isinstance(body.get("name"), str) or not account.get("id"):
            raise ApiError(400, SIM_CODE, "name and account.id are required")
        if account["id"] != self.account_id:
            raise ApiError(403, 10000, "Authentication error")
        name = body["name"].lower().rstrip(".")
        if any(z["name"] == name for z in self._zones.values()):
            raise ApiError(400, 1061, f"{name} already exists")
        return copy.deepcopy(self._new_zone(name, "pending"))

    # records

    def _list_records(self, zone, query):
        page, per_page = _paging(query, default=100, maximum=RECORDS_PER_PAGE_MAX)
        if query.get("match", "all") != "all":
            raise ApiError(400, SIM_CODE, "match=any is not simulated")
        tests = {"name": str.__eq__, "name.exact": str.__eq__, "name.endswith": str.endswith,
                 "name.startswith": str.startswith, "name.contains": str.__contains__}
        chosen = [(tests[key], value.lower().rstrip(".")) for key, value in query.items() if key in tests]
        records = [r for r in self._records[zone["id"]].values()
                   if all(test(r["name"], value) for test, value in chosen)
                   and query.get("type", r["type"]) == r["type"]]
        records.sort(key=lambda r: (r["type"], r["name"], r["created_on"]))
        return 200, self._envelope(*_page_of(copy.deepcopy(records), page, per_page))

    def _create(self, zone, body):
        records = self._records[zone["id"]]
        record = self._checked(zone, records, body, creating=True)
        records[record["id"]] = record
        return copy.deepcopy(record)

    def _by_id(self, zone, record_id, method, body):
        records = self._records[zone["id"]]
        existing = _existing(records, record_id)
        if method == "GET":
            return copy.deepcopy(existing)
        if method == "DELETE":
            del records[record_id]
            return {"id": record_id}
        if method == "PATCH" and not isinstance(body or {}, dict):
            raise invalid("A DNS record is a JSON object")
        merged = {**_writable(existing), **(body or {})} if method == "PATCH" else body
        records[record_id] = self._checked(zone, records, merged, existing=existing)
        return copy.deepcopy(records[record_id])

    def _batch(self, zone, body):
        """Deletes, patches, puts, posts, in that order, in one transaction (#batch-changes)."""
        if not isinstance(body, dict):
            raise ApiError(400, SIM_CODE, "A batch is a JSON object")
        parts = {kind: body.get(kind) or [] for kind in ("deletes", "patches", "puts", "posts")}
        if not all(isinstance(items, list) and all(isinstance(i, dict) for i in items) for items in parts.values()):
            raise ApiError(400, SIM_CODE, "deletes, patches, puts and posts must be lists of objects")
        if sum(map(len, parts.values())) > self.batch_limit:
            raise ApiError(400, SIM_CODE, f"A batch may change at most {self.batch_limit} records on this plan")
        records = copy.deepcopy(self._records[zone["id"]])
        done: dict[str, list] = {kind: [] for kind in parts}
        for item in parts["deletes"]:
            done["deletes"].append(records.pop(_existing(records, item.get("id"))["id"]))
        for kind in ("patches", "puts"):
            for item in parts[kind]:
                existing = _existing(records, item.get("id"))
                fields = {k: v for k, v in item.items() if k != "id"}
                merged = {**_writable(existing), **fields} if kind == "patches" else fields
                records[existing["id"]] = self._checked(zone, records, merged, existing=existing)
                done[kind].append(records[existing["id"]])
        for item in parts["posts"]:
            record = self._checked(zone, records, item, creating=True)
            records[record["id"]] = record
            done["posts"].append(record)
        self._records[zone["id"]] = records  # every part passed: commit
        return copy.deepcopy(done)

    def _checked(self, zone, records, body, *, existing=None, creating=False):
        """The record as stored, after Cloudflare's checks against the zone's other records."""
        if not isinstance(body, dict):
            raise invalid("A DNS record is a JSON object")
        rtype, name = body.get("type"), _record_name(body.get("name"), zone["name"])
        if rtype not in TYPES:
            raise invalid(f"Record type {rtype!r} is not simulated (only {', '.join(TYPES)})")
        ttl, proxied = body.get("ttl"), body.get("proxied", False)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not (ttl == 1 or 60 <= ttl <= 86400):
            raise invalid("TTL must be between 60 and 86400 seconds, or 1 for Automatic.", 9021)
        if not isinstance(proxied, bool):
            raise invalid("proxied must be true or false")
        if proxied and rtype not in PROXIABLE:
            raise invalid("This kind of record cannot be proxied", 9004)
        content, priority = _content(rtype, name, body)
        now = _now()
        record = {"id": existing["id"] if existing else uuid.uuid4().hex, "zone_id": zone["id"],
                  "zone_name": zone["name"], "name": name, "type": rtype, "content": content,
                  "proxiable": rtype in PROXIABLE, "proxied": proxied, "ttl": ttl,
                  "comment": body.get("comment"), "tags": body.get("tags") or [],
                  "created_on": existing["created_on"] if existing else now, "modified_on": now}
        if priority is not None:
            record["priority"] = priority
        others = [r for r in records.values() if r["name"] == name and (existing is None or r["id"] != existing["id"])]
        self._check_neighbours(record, others, creating)
        return record

    def _check_neighbours(self, record, others, creating):
        rtype = record["type"]
        for other in others:
            if other["type"] == rtype and other["content"] == record["content"] and \
                    other.get("priority") == record.get("priority"):
                raise (ApiError(400, 81057, "Record already exists.") if creating
                       else ApiError(400, 81058, "An identical record already exists."))
        strict = self.cname_alone
        if rtype == "CNAME" and any(o["type"] in ("A", "AAAA", "CNAME") or strict for o in others):
            raise ApiError(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
        if any(o["type"] == "CNAME" for o in others) and (rtype in ("A", "AAAA") or strict):
            raise ApiError(400, 81054, "A CNAME record with that host already exists.")
        if any((o["type"] == "NS") != (rtype == "NS") for o in others):
            raise invalid("NS records cannot share a name with records of other types")


def _record_name(name, zone: str) -> str:
    if not isinstance(name, str) or not name:
        raise invalid("A DNS record needs a name")
    name = zone if name == "@" else name.lower().rstrip(".")
    if not (name == zone or name.endswith("." + zone)) or not HOSTNAME.match(name):
        raise invalid(f"The record name {name} is not a valid name inside the zone {zone}")
    return name


def _content(rtype: str, name: str, body: dict) -> tuple[str, int | None]:
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise invalid("A DNS record needs content")
    if rtype == "TXT":
        return _txt(content), None
    if rtype in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(content)
        except ValueError:
            address = None
        version = 4 if rtype == "A" else 6
        if address is None or address.version != version:
            raise invalid(f"Content for {rtype} record is invalid. Must be a valid IPv{version} address")
        return str(address), None
    host = content.lower().rstrip(".")
    if not HOSTNAME.match(host):
        raise invalid(f"Content for {rtype} record is invalid. Must be a valid hostname")
    if rtype == "CNAME" and host == name:
        raise invalid("A CNAME record cannot point to itself")
    if rtype != "MX":
        return host, None
    priority = body.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 65535:
        raise invalid("MX records need a priority between 0 and 65535")
    return host, priority


def _txt(content: str) -> str:
    """Quoted character-strings, stored re-quoted with any over 255 bytes split (#txt-content)."""
    if any(not " " <= char <= "~" for char in content):
        raise invalid("Invalid TXT record. Record may only contain printable ASCII!", 9051)
    strings, position = [], 0
    while position < len(content.rstrip()):
        match = QUOTED.match(content, position)
        if match is None:
            raise invalid("The content field of TXT records must be in quotation marks.")
        strings.append(_unescape(match.group(1)))
        position = match.end()
    split = [s[i:i + 255] for s in strings for i in range(0, max(len(s), 1), 255)]
    return " ".join('"' + _escape(s) + '"' for s in split)


def _unescape(text: str) -> bytes:
    """RFC 1035 presentation: \\X is X, \\DDD the octet of that decimal number."""
    data, i = bytearray(), 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3:
            data.append(int(text[i + 1:i + 4]) & 0xFF)
            i += 4
        elif text[i] == "\\":
            data.extend(text[i + 1].encode())
            i += 2
        else:
            data.extend(text[i].encode())
            i += 1
    return bytes(data)


def _escape(data: bytes) -> str:
    return "".join("\\" + chr(b) if chr(b) in '"\\' else chr(b) if 0x20 <= b < 0x7F else f"\\{b:03d}" for b in data)


def _existing(records: dict, record_id) -> dict:
    if not isinstance(record_id, str) or not ID.fullmatch(record_id) or record_id not in records:
        raise ApiError(404, 81044, "Record does not exist.")
    return records[record_id]


def _writable(record: dict) -> dict:
    return {k: record[k] for k in ("type", "name", "content", "ttl", "proxied", "priority", "comment", "tags")
            if k in record}


def _paging(query: dict, *, default: int, maximum: int) -> tuple[int, int]:
    try:
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", default))
    except ValueError:
        raise ApiError(400, SIM_CODE, "page and per_page must be numbers") from None
    if page < 1 or not 1 <= per_page <= maximum:
        raise ApiError(400, SIM_CODE, f"page must be at least 1 and per_page between 1 and {maximum}")
    return page, per_page


def _page_of(items: list, page: int, per_page: int) -> tuple[list, dict]:
    chunk = items[(page - 1) * per_page: page * per_page]
    info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
            "total_pages": max(1, math.ceil(len(items) / per_page))}
    return chunk, info


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
