"""Unpack and parse one DMARC aggregate report file, refusing anything unsafe or malformed with a
sentence that names the problem (docs/dmarc-reports.md).

- Files are `.xml`, `.xml.gz`/`.gz` or `.zip` (one XML inside), told apart by their first bytes,
  not their names. The compressed size and the unpacked size are both capped, and unpacking stops
  as soon as the cap is passed, so a gzip or zip bomb costs no more than the cap.
- XML is parsed with defusedxml, which refuses any DTD, entity declaration or external reference
  (no entity expansion, no fetching), as a stream: each <record> is read and dropped in turn, and
  the number of elements and records is capped, so a flood of elements costs no memory or time
  beyond the caps.
- Namespaces are ignored, so RFC 7489's plain `<feedback>` and RFC 9990's namespaced one read alike.
- A row passes DMARC when its `policy_evaluated` DKIM or SPF result is `pass` (the aligned results).
"""

import io
import ipaddress
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
CHUNK = 64 * 1024
MAX_MEMBERS = 10  # files in a zip, or members in a gzip stream; a report is one XML file
MAX_COUNT = 10**9  # messages in one record
MAX_TOTAL = 10**11  # messages in one report: no day's roll-up can overflow
ELEMENTS_PER_RECORD = 40  # a record has about 15-25 elements; the cap allows for reporters' extras
DISPOSITIONS = ("none", "quarantine", "reject", "pass")  # RFC 9990 adds "pass"
RESULTS = ("pass", "fail")


class ReportRefused(ValueError):
    """This file is not a report we can store; the message says why. Nothing from it is kept."""


@dataclass(frozen=True)
class AuthResult:
    domain: str
    result: str
    detail: str = ""  # DKIM selector, or SPF scope


@dataclass(frozen=True)
class ReportRecord:
    source_ip: str
    count: int
    disposition: str
    dkim: str  # the DMARC-aligned DKIM result (policy_evaluated)
    spf: str  # the DMARC-aligned SPF result (policy_evaluated)
    header_from: str
    envelope_from: str
    envelope_to: str
    dkim_auth: tuple[AuthResult, ...]
    spf_auth: tuple[AuthResult, ...]
    reasons: tuple[str, ...]

    @property
    def aligned_pass(self) -> bool:
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True)
class AggregateReport:
    org_name: str
    email: str
    report_id: str
    begin: datetime
    end: datetime
    policy_domain: str
    policy: str  # p=
    subdomain_policy: str  # sp=
    pct: str
    adkim: str
    aspf: str
    records: tuple[ReportRecord, ...]

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.records)


# --- unpacking ---------------------------------------------------------------------------------

def unpack(data: bytes, *, max_compressed: int, max_xml: int) -> list[tuple[str, bytes]]:
    """The XML documents in one file: [(name inside, bytes)]; ReportRefused if it is unsafe."""
    if len(data) > max_compressed:
        raise ReportRefused(f"it is larger than {max_compressed:,} bytes.")
    if data.startswith(GZIP_MAGIC):
        return [("", _gunzip(data, max_xml))]
    if data.startswith(ZIP_MAGIC):
        _check_zip_directory(data)
        return _unzip(data, max_xml)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark
        try:
            data = data.decode("utf-16").encode("utf-8").replace(b'encoding="UTF-16"', b'encoding="UTF-8"', 1) \
                .replace(b"encoding='UTF-16'", b"encoding='UTF-8'", 1).replace(b'encoding="utf-16"', b'encoding="utf-8"', 1)
        except UnicodeDecodeError:
            raise ReportRefused("it is not valid UTF-16 text.") from None
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        if len(data) > max_xml:
            raise ReportRefused(f"its XML is larger than {max_xml:,} bytes.")
        return [("", data)]
    raise ReportRefused("it is not XML, gzip or zip.")


def _gunzip(data: bytes, max_xml: int) -> bytes:
    out, source, members = bytearray(), data, 0
    try:
        while source:
            members += 1
            if members > MAX_MEMBERS:
                raise ReportRefused(f"its gzip stream has more than {MAX_MEMBERS} members; a report is one XML file.")
            engine = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = engine.decompress(source, max_xml + 1 - len(out))
            out += chunk
            while engine.unconsumed_tail and len(out) <= max_xml:
                out += engine.decompress(engine.unconsumed_tail, max_xml + 1 - len(out))
            if len(out) > max_xml:
                raise ReportRefused(f"it unpacks to more than {max_xml:,} bytes (refused as a possible gzip bomb).")
            if not engine.eof:
                raise ReportRefused("it is not a complete gzip file.")
            source = engine.unused_data.lstrip(b"\x00")  # another member may follow
            if source and not source.startswith(GZIP_MAGIC):
                break
    except zlib.error as exc:
        raise ReportRefused(f"it is not a valid gzip file ({exc}).") from None
    if out.startswith(GZIP_MAGIC) or out.startswith(ZIP_MAGIC):
        raise ReportRefused("it holds another archive; a report is one XML file.")
    return bytes(out)


def _check_zip_directory(data: bytes) -> None:
    """Count the entries in the zip's end-of-central-directory record before opening it: a zip of
    thousands of empty entries is refused without reading them."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if at < 0 or at + 22 > len(data):
        raise ReportRefused("it is not a valid zip file (no central directory).")
    entries = int.from_bytes(data[at + 10:at + 12], "little")
    if entries > MAX_MEMBERS:
        raise ReportRefused(f"the zip file holds {entries} files; a report is one XML file.")


def _unzip(data: bytes, max_xml: int) -> list[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ReportRefused(f"it is not a valid zip file ({exc}).") from None
    if not members:
        raise ReportRefused("the zip file is empty.")
    if len(members) > MAX_MEMBERS:
        raise ReportRefused(f"the zip file holds {len(members)} files; a report is one XML file.")
    found, total = [], 0
    for member in members:
        if member.flag_bits & 0x1:
            raise ReportRefused(f"{member.filename} in the zip file is encrypted.")
        if member.file_size > max_xml or total + member.file_size > max_xml:
            raise ReportRefused(f"it unpacks to more than {max_xml:,} bytes (refused as a possible zip bomb).")
        out = bytearray()
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(CHUNK):
                    out += chunk
                    if total + len(out) > max_xml:  # the sizes a zip declares can lie
                        raise ReportRefused(
                            f"it unpacks to more than {max_xml:,} bytes (refused as a possible zip bomb).")
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise ReportRefused(f"{member.filename} in the zip file cannot be read ({exc}).") from None
        if out.startswith(GZIP_MAGIC) or out.startswith(ZIP_MAGIC):
            raise ReportRefused(f"{member.filename} in the zip file is another archive; a report is one XML file.")
        total += len(out)
        found.append((member.filename, bytes(out)))
    return found


# --- parsing -----------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: Element, name: str) -> list[Element]:
    return [c for c in element if _local(c.tag) == name]


def _text(element: Element | None, path: str, *, required: bool = False, limit: int = 255, where: str = "",
          lower: bool = False) -> str:
    node = element
    for name in path.split("/"):
        node = _child(node, name) if node is not None else None
    value = (node.text or "").strip() if node is not None else ""
    if lower:  # before the length check: lowercasing lengthens some letters ('İ' becomes two characters)
        value = value.lower()
    if not value and required:
        raise ReportRefused(f"{where}<{path}> is missing.")
    if len(value) > limit:
        raise ReportRefused(f"{where}<{path}> is longer than {limit} characters.")
    return value


def _epoch(element: Element, path: str) -> datetime:
    value = _text(element, path, required=True, limit=20)
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ReportRefused(f"<{path}> is not a time in seconds since 1970: {value!r}.") from None


def _stream(xml: bytes, *, max_rows: int):
    """The document's top-level elements one at a time (each dropped once handed out), with the
    root's tag first; refuses more elements or records than a report of `max_rows` can have."""
    limit = ELEMENTS_PER_RECORD * max_rows + 1000
    depth, elements, records = 0, 0, 0
    try:
        for event, element in safe_xml.iterparse(io.BytesIO(xml), events=("start", "end"), forbid_dtd=True,
                                                  forbid_entities=True, forbid_external=True):
            if event == "start":
                depth += 1
                elements += 1
                if elements > limit:
                    raise ReportRefused(f"it has more than {limit:,} elements; a report of at most {max_rows:,} "
                                        "records has fewer.")
                if depth == 1:
                    yield "root", element
                continue
            depth -= 1
            if depth == 1:
                if _local(element.tag) == "record":
                    records += 1
                    if records > max_rows:
                        raise ReportRefused(f"it has more than {max_rows:,} records.")
                yield "child", element
                element.clear()
    except DefusedXmlException:
        raise ReportRefused("it declares a DTD or entities, which reports never do.") from None
    except ParseError as exc:
        raise ReportRefused(f"it is not well-formed XML ({exc}).") from None
    except RecursionError:
        raise ReportRefused("it is nested too deeply to be a report.") from None


def parse(xml: bytes, *, max_rows: int = 100_000) -> AggregateReport:
    metadata = policy = None
    records: list[ReportRecord] = []
    for kind, element in _stream(xml, max_rows=max_rows):
        name = _local(element.tag)
        if kind == "root":
            if name != "feedback":
                raise ReportRefused(f"its root element is <{name}>, not <feedback>: not an aggregate report.")
        elif name == "report_metadata" and metadata is None:
            metadata = _metadata(element)
        elif name == "policy_published" and policy is None:
            policy = _policy(element)
        elif name == "record":
            records.append(_record(element, len(records) + 1))
    if metadata is None or policy is None:
        raise ReportRefused("<report_metadata> or <policy_published> is missing.")
    if not records:
        raise ReportRefused("it has no <record>.")
    if sum(r.count for r in records) > MAX_TOTAL:
        raise ReportRefused(f"it reports more than {MAX_TOTAL:,} messages.")
    return AggregateReport(**metadata, **policy, records=tuple(records))


def _metadata(metadata: Element) -> dict:
    begin, end = _epoch(metadata, "date_range/begin"), _epoch(metadata, "date_range/end")
    now = datetime.now(UTC)
    if not (datetime(2000, 1, 1, tzinfo=UTC) <= begin <= end <= now + timedelta(hours=1)) \
            or end - begin > timedelta(days=31):
        raise ReportRefused(f"its date range {begin:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC is not a report period "
                            "(it must have ended, and last at most 31 days).")
    return {"org_name": _text(metadata, "org_name", required=True, limit=200),
            "email": _text(metadata, "email", limit=254),
            "report_id": _text(metadata, "report_id", required=True, limit=200), "begin": begin, "end": end}


def _policy(policy: Element) -> dict:
    return {"policy_domain": _text(policy, "domain", required=True, limit=253,
                                   where="policy_published ", lower=True).rstrip("."),
            "policy": _text(policy, "p", limit=20), "subdomain_policy": _text(policy, "sp", limit=20),
            "pct": _text(policy, "pct", limit=5), "adkim": _text(policy, "adkim", limit=5),
            "aspf": _text(policy, "aspf", limit=5)}


def _record(record: Element, n: int) -> ReportRecord:
    where = f"record {n}: "
    row = _child(record, "row")
    if row is None:
        raise ReportRefused(f"{where}<row> is missing.")
    ip = _text(row, "source_ip", required=True, limit=64, where=where)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise ReportRefused(f"{where}<row/source_ip> {ip!r} is not an IP address.") from None
    if getattr(address, "scope_id", None):  # "fe80::1%eth0": a zone index names a local interface, not a sender
        raise ReportRefused(f"{where}<row/source_ip> {ip!r} is not a sender's IP address (it has a zone index).")
    ip = str(address)
    count = _text(row, "count", required=True, limit=20, where=where)
    if not (count.isascii() and count.isdigit()) or int(count) > MAX_COUNT:
        raise ReportRefused(f"{where}<row/count> {count!r} is not a message count.")
    evaluated = _child(row, "policy_evaluated")
    disposition = _text(evaluated, "disposition", required=True, limit=20, where=f"{where}row/policy_evaluated ")
    dkim = _text(evaluated, "dkim", limit=20).lower()
    spf = _text(evaluated, "spf", limit=20).lower()
    if disposition.lower() not in DISPOSITIONS:
        raise ReportRefused(f"{where}disposition {disposition!r} is not one of {', '.join(DISPOSITIONS)}.")
    for name, value in (("dkim", dkim), ("spf", spf)):
        if value and value not in RESULTS:
            raise ReportRefused(f"{where}policy_evaluated {name} {value!r} is not pass or fail.")
    identifiers, auth = _child(record, "identifiers"), _child(record, "auth_results")
    header_from = _text(identifiers, "header_from", required=True, limit=253, where=where, lower=True).rstrip(".")
    reasons = tuple(_text(r, "type", limit=40) for r in _children(evaluated, "reason")) if evaluated is not None else ()
    return ReportRecord(
        source_ip=ip, count=int(count), disposition=disposition.lower(), dkim=dkim or "fail", spf=spf or "fail",
        header_from=header_from, envelope_from=_text(identifiers, "envelope_from", limit=253, lower=True),
        envelope_to=_text(identifiers, "envelope_to", limit=253, lower=True),
        dkim_auth=tuple(AuthResult(_text(d, "domain", limit=253).lower(), _text(d, "result", limit=20).lower(),
                                   _text(d, "selector", limit=253)) for d in _children(auth, "dkim")) if auth is not None else (),
        spf_auth=tuple(AuthResult(_text(s, "domain", limit=253).lower(), _text(s, "result", limit=20).lower(),
                                  _text(s, "scope", limit=20)) for s in _children(auth, "spf")) if auth is not None else (),
        reasons=tuple(r for r in reasons if r),
    )


def read_reports(data: bytes, *, max_compressed: int, max_xml: int, max_rows: int) -> list[AggregateReport]:
    """Every report in one file (a zip may hold several), all read before any is stored."""
    documents = unpack(data, max_compressed=max_compressed, max_xml=max_xml)
    reports = []
    for name, xml in documents:
        try:
            reports.append(parse(xml, max_rows=max_rows))
        except ReportRefused as exc:
            raise ReportRefused(f"{name}: {exc}" if name else str(exc)) from None
    return reports


__all__ = ["AggregateReport", "AuthResult", "ReportRecord", "ReportRefused", "parse", "read_reports", "unpack"]
