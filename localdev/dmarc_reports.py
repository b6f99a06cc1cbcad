"""Aggregate reports for local mode, shaped like the large receivers' (RFC 7489 Appendix C), so the
whole DMARC ramp can be tried in `make run`: `manage.py generate_dmarc_reports` builds a day's
report per reporter for every configuration, with its own mail passing (DKIM aligned, SPF on the
Return-Path domain) and some failing sources (a forwarder that breaks DKIM, a spoofer), and imports
them through the same code path as every other report. It fakes the receivers; nothing is sent.
"""

import gzip
import io
import random
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from xml.etree.ElementTree import Element, SubElement, tostring

from tenants import naming

REPORTERS = (  # (org_name, email, how it sends the file)
    ("google.com", "noreply-dmarc-support@google.com", "zip"),
    ("Outlook.com", "dmarcreport@microsoft.com", "gzip"),
    ("Yahoo", "dmarchelp@yahooinc.com", "gzip"),
)


@dataclass(frozen=True)
class Source:
    ip: str
    count: int
    dkim: str  # aligned DKIM result: "pass" or "fail"
    spf: str  # aligned SPF result
    disposition: str = "none"


def _text(parent: Element, name: str, value) -> Element:
    child = SubElement(parent, name)
    child.text = str(value)
    return child


def build_report(*, domain: str, org_name: str, email: str, report_id: str, day: date, sources: list[Source],
                 policy: str = "none") -> bytes:
    """One report's XML for `domain` (its records' header From), covering one UTC day."""
    begin = int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())
    root = Element("feedback")
    _text(root, "version", "1.0")
    metadata = SubElement(root, "report_metadata")
    _text(metadata, "org_name", org_name)
    _text(metadata, "email", email)
    _text(metadata, "report_id", report_id)
    date_range = SubElement(metadata, "date_range")
    _text(date_range, "begin", begin)
    _text(date_range, "end", begin + 86399)
    published = SubElement(root, "policy_published")
    for name, value in (("domain", domain), ("adkim", "r"), ("aspf", "r"), ("p", policy), ("sp", policy),
                        ("pct", 100)):
        _text(published, name, value)
    return_path = naming.return_path_domain(domain=domain)
    for source in sources:
        record = SubElement(root, "record")
        row = SubElement(record, "row")
        _text(row, "source_ip", source.ip)
        _text(row, "count", source.count)
        evaluated = SubElement(row, "policy_evaluated")
        for name, value in (("disposition", source.disposition), ("dkim", source.dkim), ("spf", source.spf)):
            _text(evaluated, name, value)
        identifiers = SubElement(record, "identifiers")
        _text(identifiers, "header_from", domain)
        auth = SubElement(record, "auth_results")
        dkim = SubElement(auth, "dkim")
        _text(dkim, "domain", domain if source.dkim == "pass" else "forwarder.example.net")
        _text(dkim, "result", source.dkim)
        spf = SubElement(auth, "spf")
        _text(spf, "domain", return_path if source.spf == "pass" else "forwarder.example.net")
        _text(spf, "result", source.spf if source.spf == "pass" else "softfail")
    return b'<?xml version="1.0" encoding="UTF-8" ?>\n' + tostring(root)


def packed(xml: bytes, how: str, name: str) -> bytes:
    """As the reporter mails it: plain, gzip or a zip holding the XML."""
    if how == "gzip":
        return gzip.compress(xml)
    if how == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, xml)
        return buffer.getvalue()
    return xml


def day_of_reports(domain: str, day: date, *, seed: int, fail_share: float = 0.01,
                   volume: int = 400) -> list[tuple[str, bytes]]:
    """Each reporter's file for one day: [(file name, bytes)], named as receivers name them."""
    rng = random.Random(f"{seed}:{domain}:{day}")
    files = []
    for n, (org_name, email, how) in enumerate(REPORTERS):
        total = max(1, int(volume * (0.6, 0.3, 0.1)[n] * rng.uniform(0.8, 1.2)))
        failing = int(round(total * fail_share))
        sources = [Source(f"198.51.100.{10 + n}", total - failing - total // 5, "pass", "pass"),
                   Source(f"198.51.100.{20 + n}", total // 5, "pass", "fail")]  # SPF unaligned, DKIM saves it
        if failing:
            sources.append(Source(f"203.0.113.{40 + n}", failing, "fail", "fail"))
        begin = int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())
        report_id = f"{org_name.split('.')[0].lower()}-{domain}-{day:%Y%m%d}"
        xml = build_report(domain=domain, org_name=org_name, email=email, report_id=report_id, day=day,
                           sources=[s for s in sources if s.count > 0])
        name = f"{org_name}!{domain}!{begin}!{begin + 86399}.xml"
        files.append((name + (".gz" if how == "gzip" else ".zip" if how == "zip" else ""), packed(xml, how, name)))
    return files
