"""Hostile input (issue 12), as properties: whatever a person or a caller sends to a surface that
takes input, invalid input is refused with a sentence in the project's words (never Django's
generic wording), nothing is stored, nothing reaches a provider, and nothing gives a 500.

One property per surface. Each example runs inside its own savepoint that is rolled back after it
(`isolated`): pytest-django's database and the function-scoped fixtures are set up once per test,
not per example, so the rollback is what gives every example the same starting state, and what
makes the function-scoped-fixture health check safe to switch off. The row counts of every model
of `tenants`, `provisioning` and `events`, the requests the harness's RecordingTransport passed to
Postmark, the Route53 calls and the task messages published are taken before and after each example.

Examples are derandomized (`derandomize=True`, no example database): CI draws the same examples on
every run. `deadline=None`: nothing here depends on timing. The terminal summary says how many
examples each property ran, how long it took and how they ended.
"""

import base64
import csv
import gzip
import io
import json
import os
import re
import time
import zipfile
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_from_bytes
from xml.sax.saxutils import escape as xml_escape

import django.core.validators
import django.db.models.fields
import django.forms.fields
import django.forms.models
import pytest
from celery.signals import before_task_publish
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.http import QueryDict
from django.test import Client
from django.utils import timezone
from django.utils.html import escape
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dashboard.forms import AuditFilterForm, EventFilterForm, SearchForm, form_errors
from provisioning import providers as providers_module
from tenants.models import DmarcState, EmailConfiguration, Tenant
from tenants.validation import RESERVED_TENANT_SLUGS
from tests.harness import activated
from tests.test_events_receiver import SECRET as WEBHOOK_SECRET
from tests.test_events_receiver import payload as webhook_payload

BASE = hypothesis_settings(derandomize=True, database=None, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])


def examples(n: int) -> hypothesis_settings:
    """Modest counts, so that the whole module runs in well under 90 s on either database;
    HOSTILE_INPUT_SCALE=10 runs ten times as many (a longer hunt, as deterministic)."""
    return hypothesis_settings(BASE, max_examples=n * int(os.environ.get("HOSTILE_INPUT_SCALE", "1")))

# --- "a sentence", in the project's words -------------------------------------------------------------------


def _django_templates() -> set[str]:
    """Every stock message of Django's form fields, model fields and validators."""
    found = set()
    for module in (django.forms.fields, django.forms.models, django.db.models.fields, django.core.validators):
        for cls in (obj for obj in vars(module).values() if isinstance(obj, type)):
            for klass in cls.__mro__:
                found.update(str(m) for m in getattr(klass, "default_error_messages", {}).values())
            message = vars(cls).get("message")
            if message is not None and not isinstance(message, property):
                try:
                    found.add(str(message))
                except (TypeError, KeyError):  # a plural message that needs its number
                    pass
    return found | {"Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).",
                    "Ensure this value has at least %(limit_value)d characters (it has %(show_value)d)."}


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"%\(\w+\)(?:\.\d+)?[sdr]", template)
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


TEMPLATES = {t for t in _django_templates() if len(re.sub(r"%\(\w+\)\S*", "", t).split()) >= 3}
GENERIC = [_pattern(t) for t in TEMPLATES]
LITERAL = [t for t in TEMPLATES if "%(" not in t]  # "Enter a valid value.": wrong anywhere in a message
assert {"Enter a valid value.", "This field is required.", "Enter a whole number."} <= set(LITERAL)
assert any(p.fullmatch("Select a valid choice. That choice is not one of the available choices.") for p in GENERIC)

FIELD_LABELS = ("Partition", "Tenant slug", "Tenant display name", "Configuration slug", "From local part",
                "DMARC state", "Reason", "Override the minimum dwell time", "Confirmed", "Recipient", "Input")
LABELLED = re.compile(r"(?:^|\n|; )[A-Z][A-Za-z ]{0,40}: ")  # "Tenant slug: …", each line of form_errors


def assert_sentence(message, where: str = "") -> None:
    """Non-empty, a full sentence (ends with a full stop, or ? or !), not Django's generic wording;
    a form's labelled lines ("Tenant slug: The tenant slug …") are judged one by one."""
    assert isinstance(message, str) and message.strip(), f"{where}: no message"
    assert message.rstrip().endswith((".", "?", "!")), f"{where}: not a sentence: {message!r}"
    assert not any(t in message for t in LITERAL), f"{where}: Django's generic wording in {message!r}"
    for part in [message, *(p for p in LABELLED.split(message) if p)]:
        part = part.rstrip(";")
        assert not any(p.fullmatch(part) for p in GENERIC), f"{where}: Django's generic wording: {part!r}"


def html_says(response, message: str) -> bool:
    return escape(message) in response.content.decode()


# --- the state of the world around one example ----------------------------------------------------------------

MODELS = [m for label in ("tenants", "provisioning", "events") for m in apps.get_app_config(label).get_models()]


def row_counts() -> dict[str, int]:
    """Every model's row count, in one query."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(m._meta.db_table)})" for m in MODELS))
        return dict(zip((m._meta.label for m in MODELS), cursor.fetchone(), strict=True))


class _Rollback(Exception):
    pass


@contextmanager
def isolated():
    """One example in a savepoint that is always rolled back: the next example starts from the same rows."""
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


class World:
    """What an example may have changed: rows, Postmark requests, Route53 calls, task messages sent,
    and work waiting for the commit to be sent (which the example's rollback then drops)."""

    COUNTERS = ("postmark", "route53", "tasks", "queued")

    def __init__(self, harness):
        self.harness, self.published = harness, []

    def snapshot(self) -> dict:
        return {"rows": row_counts(), "postmark": len(self.harness.transport.sent),
                "route53": len(self.harness.route53_calls), "tasks": len(self.published),
                "queued": len(connection.run_on_commit)}

    def changes(self, before: dict) -> dict:
        after = self.snapshot()
        rows = {k: after["rows"][k] - v for k, v in before["rows"].items() if after["rows"][k] != v}
        return {"rows": rows, **{k: after[k] - before[k] for k in self.COUNTERS}}


NOTHING = {"rows": {}, "postmark": 0, "route53": 0, "tasks": 0, "queued": 0}


@pytest.fixture
def world(harness, monkeypatch):
    """Every provider a view or command can reach is the harness's (Postmark simulator behind the
    RecordingTransport, moto for Route53), and every task message is recorded."""
    monkeypatch.setattr(providers_module.Providers, "default", classmethod(lambda cls: harness.providers))
    w = World(harness)

    def record(sender=None, **kwargs):
        w.published.append(sender)

    before_task_publish.connect(record, weak=False)
    yield w
    before_task_publish.disconnect(record)


# --- how many examples each property ran -------------------------------------------------------------------

RUNS: dict[str, dict] = {}


class ExampleSummary:
    def pytest_terminal_summary(self, terminalreporter):
        if not RUNS:
            return
        terminalreporter.section("hostile input: examples per property")
        for name, run in RUNS.items():
            ended = ", ".join(f"{n} {what}" for what, n in run["outcomes"].most_common())
            terminalreporter.write_line(f"{name}: {run['examples']} examples in {run['seconds']:.1f}s ({ended})")


@pytest.fixture(scope="module", autouse=True)
def example_summary(request):
    if not request.config.pluginmanager.has_plugin("hostile-input-summary"):
        request.config.pluginmanager.register(ExampleSummary(), "hostile-input-summary")


class Tally:
    def __init__(self):
        self.examples, self.outcomes, self.started = 0, Counter(), time.monotonic()

    def __call__(self, outcome: str) -> None:
        self.examples += 1
        self.outcomes[outcome] += 1


@pytest.fixture
def tally(request):
    t = Tally()
    yield t
    RUNS[request.node.name] = {"examples": t.examples, "outcomes": t.outcomes,
                               "seconds": time.monotonic() - t.started}


# --- strategies ------------------------------------------------------------------------------------------------

LABEL_RE = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTILE = ["", " ", "\x00", "acme\x00", "\x00acme", "<script>alert(1)</script>", "' OR '1'='1",
           "acme'; DROP TABLE x;--", "../../etc/passwd", "%00", "\r\n", "a\nb", "acme\n", " acme ", "\tacme",
           "\ufeffacme", "\u200bacme", "xn--80ak6aa92e",
           "ab--cd", "-acme", "acme-", "ACME", "Acme", "acme_co", "a.b", "acme.", "a" * 63, "a" * 64, "a" * 201,
           "ａｃｍｅ", "аcme", "ı", "İstanbul", "ß", "😀", "{{ 7*7 }}", "${jndi:ldap://x}", "\x1b[31mred", "\u202eevil",
           "%(value)s", "{0}", "null", "None", "0", "-1", "1e309", "prod", "orders", "noreply"]
unicode_text = st.text(max_size=80)
any_text = st.one_of(st.sampled_from(HOSTILE), unicode_text,
                     st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._ ", max_size=70))
slugs = st.one_of(any_text, st.from_regex(LABEL_RE, fullmatch=True), st.sampled_from(sorted(RESERVED_TENANT_SLUGS)))
local_parts = st.one_of(any_text,
                        st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[a-z0-9_+-]{1,8}){0,2}", fullmatch=True),
                        st.sampled_from([".x", "x.", "a..b", "a" * 65, "NoReply"]))
display_names = st.one_of(any_text, st.text(min_size=1, max_size=40), st.just("x" * 200), st.just("x" * 201))
partition_names = st.one_of(st.sampled_from(["prod", "demo", "dev", "stage", "", " prod", "PROD", "prod\x00", "qa",
                                             "prod/..", "p" * 64]), unicode_text)
# What a non-UTF-8 command-line argument becomes in Python (os.fsdecode: surrogateescape).
argv_text = st.one_of(any_text, st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape")))

# --- the onboarding form: its rules from docs/design.md, independent of tenants.validation -------------------

LABEL = re.compile(LABEL_RE)
ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = re.compile(rf"{ATEXT}(\.{ATEXT})*")
ONBOARDABLE = {"prod", "demo", "dev"}  # stage lacks its webhook secret in these tests


def _text_error(value: str, limit: int) -> bool:
    """What every text field refuses: too long, a NUL, or text that is not Unicode (a lone surrogate)."""
    return len(value) > limit or "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _label_error(value: str) -> bool:
    return not value or len(value) > 63 or not LABEL.fullmatch(value) or value[2:4] == "--"


def onboarding_errors(data: dict, *, tenants: set[str], taken: set[tuple]) -> set[str]:
    """The fields the onboarding form must refuse, by docs/design.md (#slugs, #from-address)."""
    p, t, dn, c = data["partition"], data["tenant_slug"].strip(), data["tenant_display_name"].strip(), \
        data["config_slug"].strip()
    lp = data["from_local_part"].strip() or "noreply"
    bad = {name for name, wrong in (
        ("partition", p not in ONBOARDABLE),
        ("tenant_slug", _text_error(t, 200) or _label_error(t) or t in RESERVED_TENANT_SLUGS),
        ("tenant_display_name", _text_error(dn, 200)),
        ("config_slug", _text_error(c, 200) or _label_error(c)),
        ("from_local_part", _text_error(lp, 200) or len(lp) > 64 or not DOT_ATOM.fullmatch(lp)),
    ) if wrong}
    if bad:
        return bad
    if t not in tenants and not dn:
        bad.add("tenant_display_name")
    if (p, t, c) in taken:
        bad.add("config_slug")
    return bad


@pytest.fixture
def onboarding_world(world, configured_partitions, secrets_dir):
    """Stage lacks a secret (refused before anything is created); acme/orders exists in prod."""
    (secrets_dir / configured_partitions["stage"].secret_label("EmailWebhookSecret")).unlink()
    acme = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=acme, partition=configured_partitions["prod"], config_slug="orders",
                                      status="active")
    return {"tenants": {"acme"}, "taken": {("prod", "acme", "orders")}}


good_labels = st.from_regex(LABEL_RE, fullmatch=True).filter(
    lambda s: s not in RESERVED_TENANT_SLUGS and s[2:4] != "--")
HOSTILE_FIELDS = {"partition": partition_names, "tenant_slug": slugs, "tenant_display_name": display_names,
                  "config_slug": slugs, "from_local_part": local_parts}


@st.composite
def onboarding_inputs(draw, hostile=HOSTILE_FIELDS):
    """A valid onboarding with any number of its fields (none to all) made hostile."""
    data = {"partition": draw(st.sampled_from(sorted(ONBOARDABLE))), "tenant_slug": draw(good_labels),
            "tenant_display_name": draw(st.text(min_size=1, max_size=40).filter(
                lambda s: s.strip() and "\x00" not in s)),
            "config_slug": draw(good_labels),
            "from_local_part": draw(st.sampled_from(["", "noreply", "hello.world", "a+b"]))}
    for name in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=len(hostile), unique=True)):
        data[name] = draw(hostile[name])
    return data


@examples(80)
@given(data=onboarding_inputs())
def test_the_onboarding_form_refuses_hostile_input_with_sentences_and_stores_nothing(
        data, world, onboarding_world, support_client, tally):
    expected = onboarding_errors(data, **onboarding_world)
    with isolated():
        before = world.snapshot()
        response = support_client.post("/onboard/", data)
        changes = world.changes(before)
        if expected:
            assert response.status_code == 200, (response.status_code, expected)
            errors = response.context["form"].errors
            assert set(errors) == expected, (dict(errors), expected)
            for message in (m for messages in errors.values() for m in messages):
                assert_sentence(message, "onboarding form")
                assert html_says(response, message)
            assert changes == NOTHING, changes
        else:
            assert response.status_code == 302, response.context["form"].errors if response.context else response
            created = changes["rows"].pop("tenants.EmailConfiguration")
            assert created == 1 and changes["rows"].pop("tenants.Tenant", 0) in (0, 1)
            # No provider call in the request; provisioning is sent once the transaction commits.
            assert [changes[k] for k in World.COUNTERS] == [0, 0, 0, 1], changes
    tally("refused" if expected else "onboarded")


# --- the command line: manage.py onboard -----------------------------------------------------------------------

@examples(80)
@example(given={"partition": "demo", "tenant_slug": "t0", "tenant_display_name": "\udc80", "config_slug": "c0",
                "from_local_part": ""})  # a display name argument that is not UTF-8: was an encoding error
@given(given=onboarding_inputs({name: st.one_of(values, argv_text) for name, values in HOSTILE_FIELDS.items()}))
def test_manage_py_onboard_refuses_hostile_arguments_with_a_sentence_and_a_non_zero_exit(
        given, world, onboarding_world, tally):
    partition, tenant, config = given["partition"], given["tenant_slug"], given["config_slug"]
    display_name, local_part = given["tenant_display_name"], given["from_local_part"]
    data = {"partition": partition, "tenant_slug": tenant, "tenant_display_name": display_name or tenant,
            "config_slug": config, "from_local_part": local_part or "noreply"}
    expected = onboarding_errors(data, **onboarding_world)
    out = io.StringIO()
    with isolated():
        before = world.snapshot()
        try:
            call_command("onboard", f"--partition={partition}", f"--tenant={tenant}", f"--config={config}",
                         f"--display-name={display_name}", f"--from-local-part={local_part or 'noreply'}", stdout=out)
        except CommandError as exc:
            assert expected, f"refused valid arguments: {exc}"
            assert exc.returncode != 0
            labels = {line.split(": ", 1)[0] for line in str(exc).split("\n") if ": " in line} & set(FIELD_LABELS)
            assert labels, str(exc)
            assert_sentence(str(exc), "manage.py onboard")
            assert world.changes(before) == NOTHING
            tally("refused")
        else:
            assert not expected, f"accepted arguments the form must refuse ({expected}): {out.getvalue()}"
            assert out.getvalue().startswith("Created ")
            changes = world.changes(before)
            assert changes["rows"]["tenants.EmailConfiguration"] == 1
            assert [changes[k] for k in World.COUNTERS] == [0, 0, 0, 1], changes
            tally("onboarded")


# --- search and filter parameters ------------------------------------------------------------------------------

PARAMS = ["q", "status", "dmarc", "sort", "page", "partition", "row", "actor", "action", "configuration", "since",
          "until", "after", "type", "have"]
param_values = st.one_of(any_text, st.sampled_from(["active", "failed", "reject", "-bounce_rate", "Bounce", "7d",
                                                    "999d", "0d", "2026-01-01", "1999-12-31", "9999-12-31",
                                                    "0001-01-01", "2026-02-30", str(2**63), "-1", "1", "0", "1e3",
                                                    "9" * 5000, "events:abc,dkim", "x" * 201, "prod"]))
queries = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(PARAMS), st.text(max_size=8)), param_values, max_size=5)
    .map(lambda d: "&".join(f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}" for k, v in d.items())),
    st.binary(max_size=60).map(lambda b: quote_from_bytes(b, safe="=&")),
    st.lists(st.tuples(st.sampled_from(PARAMS), param_values), max_size=4)  # a name given twice
    .map(lambda pairs: "&".join(f"{k}={quote_from_bytes(v.encode())}" for k, v in pairs)),
)


def form_refusals(form_class, data, *, as_lines: bool = False) -> list[str]:
    """The form's messages, or the lines `form_errors` makes of them (one line per message, labelled)."""
    form = form_class(data)
    if form.is_valid():
        return []
    messages = [m for field_messages in form.errors.values() for m in field_messages]
    if not as_lines:
        return messages
    lines = form_errors(form).split("\n")
    assert len(lines) == len(messages) and all(len(line.splitlines()) == 1 for line in lines), lines
    return lines


def check_listing(response, query: QueryDict, form_class, *, as_lines: bool = False) -> str:
    assert response.status_code == 200, response.status_code
    refusals = form_refusals(form_class, query, as_lines=as_lines)
    for message in refusals:
        assert_sentence(message, form_class.__name__)
        assert html_says(response, message), message
    return "refused" if refusals else "shown"


def check_attention(response, query: QueryDict) -> str:
    if response.status_code == 404:
        assert "row" in query or query.get("partition"), "a 404 without a bad value"
        assert_sentence(response.context["message"], "attention 404")
        assert html_says(response, response.context["message"])
        return "not found"
    assert response.status_code == 200, response.status_code
    return "shown"


def check_events(response, query: QueryDict) -> str:
    assert response.status_code == 200, response.status_code
    refusals = form_refusals(EventFilterForm, {"type": query.get("type", "")}, as_lines=True)
    for message in refusals:
        assert_sentence(message, "event filter")
        assert html_says(response, message + " Showing every type."), message
    return "refused" if refusals else "shown"


def check_live(response, query: QueryDict) -> str:
    assert response.status_code == 200, response.status_code
    assert isinstance(response.json()["fragments"], dict)
    return "shown"


PAGES = {
    "overview": ("/partitions/prod/", lambda r, q: check_listing(r, q, SearchForm)),
    "configurations": ("/configurations/", lambda r, q: check_listing(r, q, SearchForm)),
    "attention": ("/attention/", check_attention),
    "audit": ("/audit/", lambda r, q: check_listing(r, q, AuditFilterForm, as_lines=True)),  # one <li> a line
    "events": ("/configurations/{pk}/", check_events),
    "events_live": ("/configurations/{pk}/live/", check_live),
}


@pytest.fixture
def listed(world, configured_partitions):
    """A failed configuration in prod: on every list, in Needs attention, with an events panel."""
    acme = Tenant.objects.create(slug="acme", display_name="Acme")
    return EmailConfiguration.objects.create(tenant=acme, partition=configured_partitions["prod"],
                                             config_slug="orders", status="failed")


@pytest.mark.parametrize("page", PAGES)
@example(query="action=%0D%0A")  # audit: a quoted line break split its sentence over two list items
@examples(40)
@given(query=queries)
def test_search_and_filter_parameters_never_give_a_500_and_bad_values_are_said(
        page, query, world, listed, support_client, tally):
    path, check = PAGES[page]
    with isolated():
        before = world.snapshot()
        response = support_client.get(path.format(pk=listed.pk) + "?" + query)
        tally(check(response, QueryDict(query)))
        assert world.changes(before) == NOTHING


# --- the DMARC ramp and test email forms ------------------------------------------------------------------------

@pytest.fixture
def active(world, configured_partitions, harness):
    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        dmarc_state=DmarcState.QUARANTINE_TEST, dmarc_changed_at=timezone.now() - timedelta(days=30))
    return configuration


@pytest.fixture
def clients(support_user, email_admin_user):
    """A signed-in client per role (conftest's support_client and admin_client_ea share one client)."""
    signed_in = {}
    for role, user in (("support", support_user), ("email admin", email_admin_user)):
        signed_in[role] = Client()
        signed_in[role].force_login(user)
    return signed_in


def check_answer(response, before, world, *, form_valid: bool, what: str) -> str:
    """A JSON answer with a sentence; an error (or a refusal of the role) changed nothing anywhere."""
    assert response.status_code in (200, 400, 403), response.status_code
    answer = response.json()
    assert_sentence(answer["message"], what)
    changes = world.changes(before)
    if response.status_code == 200 and answer["level"] != "error":
        assert form_valid
        return "done"
    if not form_valid:
        assert response.status_code == 400 and changes == NOTHING, (answer, changes)
        return "refused"
    if changes["postmark"] or changes["route53"]:  # valid input that the provider refused: said, and audited
        assert set(changes["rows"]) <= {"tenants.AuditEntry"}, changes
        return "provider refused"
    assert changes == NOTHING, changes
    return "not allowed now"


ramp_data = st.fixed_dictionaries({"to": st.one_of(st.sampled_from(DmarcState.values), any_text)}, optional={
    "reason": st.one_of(any_text, st.just("because " * 130), st.just("r" * 1000)),
    "override_dwell": st.sampled_from(["", "on", "yes", "false", "0", "\x00", "x" * 300]),
    "confirmed": st.sampled_from(["", "yes", "no", "1"]),
})


@examples(60)
@given(data=ramp_data, as_admin=st.booleans())
def test_the_dmarc_ramp_form_refuses_hostile_input_with_a_sentence_and_publishes_nothing(
        data, as_admin, world, active, clients, tally):
    reason = data.get("reason", "").strip()
    form_valid = data["to"] in DmarcState.values and len(reason) <= 1000 and "\x00" not in reason
    with isolated():
        before = world.snapshot()
        client = clients["email admin" if as_admin else "support"]
        response = client.post(f"/configurations/{active.pk}/dmarc/", data, HTTP_ACCEPT="application/json")
        tally(check_answer(response, before, world, form_valid=form_valid, what="DMARC ramp"))


def _recipient_valid(value: str) -> bool:
    value = value.strip()
    if not value or len(value) > 254 or "\x00" in value:
        return False
    try:
        django.core.validators.validate_email(value)
    except ValidationError:
        return False
    return True


recipients = st.one_of(any_text, st.emails(), st.sampled_from([
    "a@b", "a@localhost", "a@[127.0.0.1]", "a@b.c", "@example.com", "a@", "a b@example.com", "a@example.com\n",
    "hardbounce@bounce-testing.postmarkapp.com", "x@example.com, y@example.com", "a@ex\x00ample.com",
    "\"quoted\"@example.com", "a@üñí.example", "a@-bad.example.com", "a" * 250 + "@example.com"]))


@examples(60)
@given(to=recipients)
def test_the_test_email_form_refuses_hostile_recipients_with_a_sentence_and_sends_nothing(
        to, world, active, support_client, tally):
    with isolated():
        before = world.snapshot()
        response = support_client.post(f"/configurations/{active.pk}/test-email/", {"to": to},
                                       HTTP_ACCEPT="application/json")
        tally(check_answer(response, before, world, form_valid=_recipient_valid(to), what="test email"))


# --- the Postmark event webhook ---------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                         st.sampled_from(["\x00", "\ud800", "x\udfffy", "İ" * 300, "9999-12-31T23:59:59-14:00",
                                          "0001-01-01T00:00:00+14:00", "2019-11-05T16:33:54.9070259Z",
                                          "2100-01-01T00:00:00Z", "x" * 5000, 2**63, -(2**63), 10**30, 1.5, "1001"]))


def _json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4))


json_values = st.recursive(json_scalars, _json_containers, max_leaves=12)
EVENT_FIELDS = ["RecordType", "ServerID", "MessageID", "Recipient", "DeliveredAt", "BouncedAt", "ID", "Type",
                "Email", "Description", "Details", "Tag", "MessageStream", "serverid", "RECORDTYPE"]


@st.composite
def events_like(draw):
    """One of Postmark's documented payloads with some fields replaced by hostile values, or dropped."""
    body = webhook_payload(draw(st.sampled_from(["delivery", "bounce", "bounce_soft", "spam_complaint"])))
    body["ID"], body["MessageID"] = draw(st.integers(1, 10**9)), f"m-{draw(st.integers(1, 10**9))}"
    for name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=3)):
        if draw(st.booleans()):
            body[name] = draw(json_values)
        else:
            body.pop(name, None)
    return body


@pytest.fixture
def matched_server(listed, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 4096  # lowered: oversized bodies cost kilobytes
    EmailConfiguration.objects.filter(pk=listed.pk).update(postmark_server_id=1001)  # the payloads' server


webhook_bodies = st.one_of(
    events_like().map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.integers(1, 3000).map(lambda n: "[" * n),  # nested beyond any parser's patience
    st.integers(5000, 6000).map(lambda n: "x" * n),  # over the (lowered) size limit
)


@examples(100)
@given(body=webhook_bodies)
def test_the_event_webhook_refuses_hostile_bodies_with_a_sentence_and_stores_only_events(
        body, world, matched_server, tally):
    with isolated():
        before = world.snapshot()
        response = Client().post("/webhooks/postmark/prod/", data=body, content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {WEBHOOK_SECRET}")
        assert response.status_code in (200, 400, 411, 413), (response.status_code, response.content[:300])
        answer = response.json()
        assert_sentence(answer["message"], "webhook")
        changes = world.changes(before)
        stored = response.status_code == 200 and answer["stored"]
        assert changes == ({**NOTHING, "rows": {"events.DeliveryEvent": 1}} if stored else NOTHING), changes
    tally("stored" if stored else "stored before" if response.status_code == 200 else f"refused {response.status_code}")


# --- DMARC report files: uploads, the command, the inbound webhook ----------------------------------------------

def _zipped(data: bytes, name: str = "report.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _yesterday() -> int:
    return int(datetime.combine(timezone.now().astimezone(UTC).date() - timedelta(days=1), datetime.min.time(),
                                tzinfo=UTC).timestamp())


def report_document(*, records: int = 1, **fields: str) -> bytes:
    """An aggregate report's XML for yesterday: every field plausible unless given."""
    begin = _yesterday()
    v = {"org_name": "google.com", "email": "noreply-dmarc-support@google.com", "report_id": "1", "begin": str(begin),
         "end": str(begin + 86399), "domain": "orders.acme.prod.ardamails.com", "p": "none", "pct": "100",
         "ip": "198.51.100.7", "count": "57", "disposition": "none", "dkim": "pass", "spf": "pass",
         "header_from": "orders.acme.prod.ardamails.com", "auth_domain": "orders.acme.prod.ardamails.com", **fields}
    e = {k: xml_escape(x) for k, x in v.items()}
    record = (f"<record><row><source_ip>{e['ip']}</source_ip><count>{e['count']}</count><policy_evaluated>"
              f"<disposition>{e['disposition']}</disposition><dkim>{e['dkim']}</dkim><spf>{e['spf']}</spf>"
              f"</policy_evaluated></row><identifiers><header_from>{e['header_from']}</header_from></identifiers>"
              f"<auth_results><dkim><domain>{e['auth_domain']}</domain><result>pass</result></dkim></auth_results>"
              "</record>")
    return (f"<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{e['org_name']}</org_name>"
            f"<email>{e['email']}</email><report_id>{e['report_id']}</report_id><date_range><begin>{e['begin']}"
            f"</begin><end>{e['end']}</end></date_range></report_metadata><policy_published><domain>{e['domain']}"
            f"</domain><p>{e['p']}</p><pct>{e['pct']}</pct></policy_published>{record * records}</feedback>").encode()


VALID_REPORT = report_document()


@st.composite
def report_xml(draw, most_broken: int = 3):
    """An aggregate report for yesterday with none to a few of its fields hostile."""
    begin = _yesterday()
    v = {"org_name": draw(st.sampled_from(["google.com", "Yahoo", "Outlook.com"])),
         "email": draw(st.sampled_from(["noreply-dmarc-support@google.com", "dmarchelp@yahooinc.com"])),
         "report_id": str(draw(st.integers(1, 10**12))), "begin": str(begin), "end": str(begin + 86399),
         "domain": draw(st.sampled_from(["orders.acme.prod.ardamails.com", "prod.ardamails.com", "example.com"])),
         "p": "none", "pct": "100", "ip": draw(st.sampled_from(["198.51.100.7", "2001:db8::1"])),
         "count": str(draw(st.integers(0, 10**9))),
         "disposition": draw(st.sampled_from(["none", "quarantine", "pass"])),
         "dkim": draw(st.sampled_from(["pass", "fail", ""])), "spf": draw(st.sampled_from(["pass", "fail", ""])),
         "header_from": draw(st.sampled_from(["orders.acme.prod.ardamails.com", "x.orders.acme.prod.ardamails.com"])),
         "auth_domain": "orders.acme.prod.ardamails.com"}
    hostile = {"begin": ["-1", "0", str(begin + 10 * 86400), "9" * 20, "1e9", "١٧٩٥٩١٠٤٠٠"],
               "end": [str(begin - 1), str(begin + 40 * 86400), "99999999999999999999"],
               "ip": ["fe80::1%eth0", "fe80::1%" + "x" * 50, "::ffff:198.51.100.7", "1.2.3.256", "01.2.3.4", "::"],
               "count": ["-1", "1000000001", "٣", "1_0", "0x10", " 5"],
               "domain": ["İ" * 200, "orders.acme.prod.ardamails.com.", "ORDERS.ACME.PROD.ARDAMAILS.COM", "x" * 254],
               "header_from": ["İ" * 200, "ORDERS.ACME.PROD.ARDAMAILS.COM.", "x" * 254],
               "auth_domain": ["İ" * 253], "org_name": ["İ" * 200, "x" * 201], "report_id": ["x" * 201, "İ" * 150],
               "email": ["İ" * 200, "x" * 255], "disposition": ["NONE", "drop"], "dkim": ["PASS", "softfail"],
               "pct": ["100000", "İİİİİ"], "p": ["İ" * 20]}
    for name in draw(st.lists(st.sampled_from(sorted(v)), max_size=most_broken, unique=True)):
        v[name] = draw(st.one_of(st.sampled_from(hostile.get(name, [""])), any_text, st.just("")))
    return report_document(records=draw(st.sampled_from([1, 1, 2, 3, 0] if most_broken else [1, 2])), **v)


def _elements(inner: st.SearchStrategy) -> st.SearchStrategy:
    names = st.sampled_from(["feedback", "record", "row", "x", "report_metadata", "a:b"])
    return st.tuples(names, st.lists(inner, max_size=3)).map(lambda t: f"<{t[0]}>{''.join(t[1])}</{t[0]}>")


xml_soup = st.recursive(st.text(alphabet="abc<>&;'\" \n", max_size=10).map(xml_escape), _elements,
                        max_leaves=15).map(str.encode)
HOSTILE_XML = [
    b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<feedback>&b;</feedback>",
    b'<?xml version="1.0"?><!DOCTYPE feedback SYSTEM "http://example.com/x.dtd"><feedback/>',
    b'<feedback xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></feedback>',
    b"<feedback>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</feedback>",
    b"<feedback>" + b"<record/>" * 2000 + b"</feedback>",
    b"<feedback>&#0;</feedback>", b"<feedback>\xed\xa0\x80</feedback>", b"\xff\xfe<\x00f\x00",
    b"\xef\xbb\xbf<feedback>",
    "<feedback>\u0000</feedback>".encode(), b"<feedback/>" * 2, b"<", b"",
]
report_files = st.one_of(
    report_xml(),
    report_xml().map(gzip.compress), report_xml().map(_zipped),
    st.binary(max_size=300),
    st.binary(max_size=300).map(gzip.compress), st.binary(max_size=300).map(_zipped),
    st.binary(max_size=300).map(lambda b: b"\x1f\x8b" + b), st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
    xml_soup, xml_soup.map(gzip.compress), st.sampled_from(HOSTILE_XML),
    st.just(gzip.compress(b"\x00" * 20000)), st.just(_zipped(b"<" * 20000)),  # over the (lowered) unpacked limit
    st.just(gzip.compress(gzip.compress(b"<feedback/>"))), st.just(b"\x1f\x8b" * 3000),
)
file_names = st.one_of(st.sampled_from(["report.xml", "r.xml.gz", "r.zip", "x", ".xml", "a/b.xml", "..", "con.xml"]),
                       st.text(min_size=1, max_size=30))
# A browser sends a file name with its quotes and line breaks escaped; Django's test client does not.
# Django's SimpleUploadedFile takes no path or "..", which Django's multipart parser drops anyway.
upload_names = file_names.filter(lambda n: not any(c in n for c in '"\\\r\n/') and n.strip() not in ("", ".", ".."))


@pytest.fixture
def report_limits(settings):
    """Small limits, so that oversized files and bombs cost kilobytes, not megabytes."""
    settings.DMARC_REPORT_MAX_BYTES, settings.DMARC_REPORT_MAX_XML_BYTES = 4096, 16384
    settings.DMARC_REPORT_MAX_ROWS, settings.DMARC_INBOUND_MAX_BYTES = 50, 65536


def check_outcomes(messages: list[tuple[str, str]], changes: dict, *, audited: int, what: str) -> str:
    """Every file's outcome is a sentence; refused ones stored nothing: what changed is the stored reports."""
    for status, message in messages:
        assert status in ("stored", "duplicate", "refused"), status
        assert_sentence(message, what)
    stored = sum(status == "stored" for status, _ in messages)
    rows = dict(changes["rows"])
    assert rows.pop("events.DmarcReport", 0) == stored, (messages, changes)
    if not stored:
        assert not {k: n for k, n in rows.items() if k != "tenants.AuditEntry"}, changes
    assert set(rows) <= {"events.DmarcReportRow", "events.DmarcDay", "events.DmarcReporterDay", "tenants.AuditEntry"}
    assert rows.get("tenants.AuditEntry", 0) in (audited if isinstance(audited, range) else [audited]), changes
    assert [changes[k] for k in World.COUNTERS] == [0, 0, 0, 0], changes
    return "stored" if stored else "refused"


@examples(60)
@example(files=[("r.xml", report_document(ip="fe80::1%" + "x" * 50))])  # PostgreSQL's inet: was a 500
@given(files=st.lists(st.tuples(upload_names, report_files), min_size=1, max_size=3))
def test_uploaded_report_files_are_refused_with_a_sentence_and_store_nothing(
        files, world, listed, report_limits, clients, tally):
    with isolated():
        before = world.snapshot()
        uploads = [SimpleUploadedFile(n, d) for n, d in files]
        response = clients["email admin"].post("/dmarc-reports/", {"files": uploads})
        assert response.status_code in (200, 400), response.status_code
        results = response.context["results"]
        assert (response.status_code == 400) == any(r.status == "refused" for r in results)
        for r in results:
            assert html_says(response, r.message)
        # One audit entry per file that held a report (a zip's reports share their file's).
        audited = range(len({r.name for r in results if r.status != "refused"}), len(files) + 1)
        tally(check_outcomes([(r.status, r.message) for r in results], world.changes(before), audited=audited,
                             what="upload"))


@examples(60)
@example(name="r\udcff.xml", data=VALID_REPORT)  # a file name that is not UTF-8: was an encoding error
@example(name="r.xml", data=report_document(domain="İ" * 200))  # 400 characters once lowercased: was a 500
@given(name=st.one_of(file_names.filter(lambda n: not {"/", "\x00"} & set(n) and n not in (".", "..")
                                        and n.splitlines() == [n]),
                      st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\x00" not in b and
                                                                b not in (b".", b".."))
                      .map(lambda b: b.decode("utf-8", "surrogateescape")).filter(lambda n: n.splitlines() == [n])),
       data=report_files)
def test_manage_py_import_dmarc_reports_refuses_hostile_files_with_a_sentence_and_stores_nothing(
        name, data, world, listed, report_limits, tmp_path, tally):
    path = tmp_path / name
    path.write_bytes(data)
    out = io.StringIO()
    with isolated():
        before = world.snapshot()
        try:
            call_command("import_dmarc_reports", str(path), stdout=out)
            lines = out.getvalue().splitlines()[:-1]  # then the summary
        except CommandError as exc:
            assert_sentence(str(exc), "import_dmarc_reports")
            assert exc.returncode != 0
            lines = out.getvalue().splitlines()
        outcomes = [(_import_status(line, path), line) for line in lines]
        tally(check_outcomes(outcomes, world.changes(before), audited=int(any(s != "refused" for s, _ in outcomes)),
                             what="import_dmarc_reports"))
    path.unlink()


def _import_status(line: str, path) -> str:
    """The outcome a line of import_dmarc_reports names ("<file>: stored …", "<path>: refused …")."""
    shown = [str(p).encode("utf-8", "surrogateescape").decode("utf-8", "replace") for p in (path.name, path)]
    rest = next((line[len(s) + 2:] for s in shown if line.startswith(s + ": ")), None)
    assert rest is not None, f"a line that names no file: {line!r}"
    if rest.startswith("stored "):
        return "stored"
    return "refused" if rest.startswith(("refused", "cannot be read")) else "duplicate"


def _mail(sender: str, name: str) -> str:
    """An inbound message from `sender` carrying one good report as the attachment `name`."""
    return json.dumps({"From": sender, "Headers": [{"Name": "Received-SPF", "Value": "Pass"}],
                       "Attachments": [{"Name": name, "Content": _b64(VALID_REPORT)}]})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


attachments = st.one_of(
    st.fixed_dictionaries({"Name": st.one_of(file_names, json_scalars),
                           "Content": st.one_of(report_files.map(_b64), json_scalars, st.text(max_size=20))}),
    st.fixed_dictionaries({"Name": file_names, "Content": report_xml(most_broken=0).map(gzip.compress).map(_b64)}),
    json_values,
)
senders = st.one_of(st.sampled_from(["noreply-dmarc-support@google.com", "x@evil.example", ""]), any_text,
                    st.sampled_from(["\x00@google.com", "a\ud800@google.com", "İ" * 300]), json_scalars)
inbound_messages = st.fixed_dictionaries(
    {"Attachments": st.one_of(st.lists(attachments, max_size=3), json_scalars)},
    optional={"From": senders, "FromFull": st.one_of(json_values, st.fixed_dictionaries({"Email": senders})),
              "Headers": st.one_of(json_values, st.lists(st.fixed_dictionaries(
                  {"Name": st.sampled_from(["Received-SPF", "X"]),
                   "Value": st.one_of(st.sampled_from(["Pass (sender SPF authorized)", "Fail", "\x00"]),
                                      json_scalars)}), max_size=2))})
inbound_bodies = st.one_of(inbound_messages.map(json.dumps), json_values.map(json.dumps), st.binary(max_size=100))


@examples(80)
@example(body=_mail("\x00@google.com", "r.xml"))  # PostgreSQL text holds no NUL: was a 500
@example(body=_mail("a\ud800@google.com", "r.xml"))  # a lone surrogate: was a 500 on both databases
@example(body=_mail("noreply-dmarc-support@google.com", "r\x00.xml"))  # the file name: was a 500 on PostgreSQL
@given(body=inbound_bodies)
def test_inbound_report_mail_is_refused_with_a_sentence_and_stores_nothing(
        body, world, listed, report_limits, tally):
    auth = "Basic " + base64.b64encode(f"postmark:{WEBHOOK_SECRET}".encode()).decode()
    with isolated():
        before = world.snapshot()
        response = Client().post("/webhooks/postmark-inbound/prod/", data=body, content_type="application/json",
                                 HTTP_AUTHORIZATION=auth)
        assert response.status_code in (200, 400, 411, 413), (response.status_code, response.content[:300])
        answer = response.json()
        assert_sentence(answer["message"], "inbound")
        results = [(r["status"], r["message"]) for r in answer.get("results", [])]
        if response.status_code != 200:
            assert world.changes(before) == NOTHING
            tally(f"refused {response.status_code}")
        else:
            tally(check_outcomes(results, world.changes(before), audited=0, what="inbound"))


# --- bulk onboarding CSV rows ------------------------------------------------------------------------------------

COLUMNS = ["partition", "tenant", "display_name", "config", "from_local_part"]
BREAKS = {"partition": ["nowhere", "stage", "PROD", ""], "tenant": ["Bad_Slug", "-x", "postmaster", "xn--abc", ""],
          "config": ["a" * 64, "a.b", "Orders", ""], "from_local_part": ["no..reply", ".x", "NoReply", "a" * 65],
          "display_name": ["x" * 201]}


@st.composite
def bulk_files(draw):
    """Rows known good, rows known bad (one field broken, or the same key as a good row), and random rows."""
    good_keys = draw(st.lists(st.tuples(st.sampled_from(sorted(ONBOARDABLE)), good_labels, good_labels)
                              .filter(lambda k: not k[1].startswith("bad")),
                              max_size=4, unique_by=lambda k: k)
                     .filter(lambda keys: ("prod", "acme", "orders") not in keys))
    rows = [("good", [p, t, f"Tenant {t}", c, draw(st.sampled_from(["", "noreply", "hello.world"]))])
            for p, t, c in good_keys]
    for i in range(draw(st.integers(0, 3))):
        cells = ["prod", f"bad{i}", f"Bad {i}", f"cfg{i}", "noreply"]
        column = draw(st.sampled_from(sorted(BREAKS)))
        cells[COLUMNS.index(column)] = draw(st.sampled_from(BREAKS[column]))
        rows.append(("bad", cells))
    names = {r[1][1].strip().lower() for r in rows}
    for cells in draw(st.lists(st.lists(any_text.filter(lambda v: "\x00" not in v), max_size=6), max_size=3)):
        if len(cells) < 2 or cells[1].strip().lower() not in names:
            rows.append(("junk", cells))
    rows = draw(st.permutations(rows))
    if good_keys and draw(st.booleans()):  # a good row's key again, after it: that line is reported
        p, t, c = good_keys[0]
        first = rows.index(next(r for r in rows if r[0] == "good" and r[1][:2] == [p, t] and r[1][3] == c))
        again = ("bad", [p, t.upper() if draw(st.booleans()) else t, f"Tenant {t}", c, ""])
        rows.insert(draw(st.integers(first + 1, len(rows))), again)
    return rows, draw(st.sampled_from(["\n", "\r\n", "\r"]))  # Unix, Windows and classic Mac line endings


def write_csv(rows, line_ending: str) -> tuple[str, dict[int, str]]:
    """The file, and each row's line number (a quoted line break makes a row span lines; its first is named)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_ending, quoting=csv.QUOTE_ALL)
    writer.writerow(COLUMNS)
    lines = {}
    for kind, cells in rows:
        lines[len(re.findall(r"\r\n|\r|\n", out.getvalue())) + 1] = kind
        writer.writerow(cells)
    return out.getvalue(), lines


def check_bulk_errors(errors: list[str], lines: dict[int, str]) -> set[int]:
    reported = set()
    for error in errors:
        match = re.match(r"line (\d+): (.+)", error, re.DOTALL)
        assert match, error
        assert_sentence(match[2], "bulk row")
        reported.add(int(match[1]))
    assert not {n for n in reported if lines.get(n) == "good"}, (errors, lines)
    assert {n for n, kind in lines.items() if kind == "bad"} <= reported, (errors, lines)
    return reported


@examples(60)
@example(file=([("good", ["prod", "t0", "Tenant t0", "c0", ""]), ("bad", ["prod", "bad0", "Bad 0", "cfg0", ".x"])],
               "\r"))  # classic Mac line endings: was "not CSV (new-line character seen in unquoted field …)"
@given(file=bulk_files())
def test_bulk_onboarding_reports_each_bad_row_by_line_and_starts_nothing(
        file, world, onboarding_world, support_client, tmp_path, tally):
    text, lines = write_csv(*file)
    with isolated():
        before = world.snapshot()
        response = support_client.post("/onboard/bulk/", {"file": SimpleUploadedFile("rows.csv", text.encode())})
        plan, changes = response.context["plan"] if response.context else None, world.changes(before)
        if response.status_code == 400:
            check_bulk_errors(plan.errors, lines)
            for error in plan.errors:
                assert html_says(response, error)
            assert changes == NOTHING, changes
        else:
            assert response.status_code == 302 and "bad" not in lines.values(), response.status_code
            rows = changes["rows"]
            assert rows.get("tenants.EmailConfiguration") == rows["provisioning.BulkOnboardingRow"], rows
            assert [changes[k] for k in World.COUNTERS] == [0, 0, 0, 0], changes  # the dispatcher starts them
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode())
    out = io.StringIO()
    with isolated():
        before = world.snapshot()
        try:
            call_command("onboard_bulk", str(path), stdout=out)
        except CommandError as exc:
            assert response.status_code == 400
            assert out.getvalue() == "".join(e + "\n" for e in plan.errors)  # the same lines as the page
            assert_sentence(str(exc), "onboard_bulk")
            assert world.changes(before) == NOTHING
        else:
            assert response.status_code == 302
    tally("refused" if response.status_code == 400 else "started")


@examples(40)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      st.lists(st.lists(any_text, max_size=6), max_size=4).map(
                          lambda rows: "\n".join(",".join(r) for r in rows).encode())))
def test_a_bulk_file_of_random_bytes_is_refused_with_a_sentence_and_starts_nothing(
        data, world, onboarding_world, support_client, tally):
    with isolated():
        before = world.snapshot()
        response = support_client.post("/onboard/bulk/", {"file": SimpleUploadedFile("x.csv", data)})
        assert response.status_code == 400, response.status_code
        context = response.context
        messages = context.get("errors") or context["plan"].errors
        for message in messages:
            assert_sentence(re.sub(r"^line \d+: ", "", message), "bulk file")
            assert html_says(response, message)
        assert world.changes(before) == NOTHING
    tally("refused")


# --- requests Django itself cannot read ---------------------------------------------------------------------------

UNREADABLE = {
    "a query of more than 1000 parameters": ("get", "/configurations/?" + "&".join(f"k{i}=1" for i in range(1001)), {}),
    "a form of more than 1000 fields": ("post", "/onboard/", {
        "data": "&".join(f"k{i}=1" for i in range(1001)), "content_type": "application/x-www-form-urlencoded"}),
    "a multipart body without its boundary": ("post", "/onboard/bulk/", {
        "data": b"garbage", "content_type": "multipart/form-data"}),
}


@pytest.mark.parametrize("kind", UNREADABLE)
def test_a_request_django_cannot_read_is_refused_with_a_sentence_on_the_sites_page(kind, world, onboarding_world,
                                                                                    support_client):
    method, path, options = UNREADABLE[kind]
    before = world.snapshot()
    response = getattr(support_client, method)(path, **options)
    assert response.status_code == 400
    assert world.changes(before) == NOTHING
    assert b"<h1>Bad Request (400)</h1>" not in response.content  # Django's own page: no sentence, no layout
    assert_sentence(response.context["message"], kind)
