"""Pages, query counts, permissions on every mutating view, CSRF."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from provisioning.models import ProvisioningStep, StepName
from tenants.models import EmailConfiguration, Tenant
from tests.harness import RUA, reported


def make_configurations(partition, n, *, status="active", prefix="t"):
    tenants = Tenant.objects.bulk_create([Tenant(slug=f"{prefix}{i:05d}", display_name=f"Tenant {i}") for i in range(n)])
    configurations = [
        EmailConfiguration(tenant=t, partition=partition, config_slug="orders", status=status,
                           sending_domain=f"orders.{t.slug}.{partition.mail_zone}")
        for t in tenants
    ]
    return EmailConfiguration.objects.bulk_create(configurations)


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url_name, args", [
    ("dashboard:home", []), ("dashboard:partition", ["prod"]), ("dashboard:configurations", []),
])
def test_overview_pages_issue_the_same_number_of_queries_for_10_and_500(support_client, configured_partitions, url_name, args):
    url = reverse(url_name, args=args)
    make_configurations(configured_partitions["prod"], 10)
    small = count_queries(support_client, url)
    make_configurations(configured_partitions["prod"], 490, prefix="u")
    large = count_queries(support_client, url)
    print(f"{url}: {small} queries with 10 configurations, {large} with 500")
    assert small == large


def test_the_configuration_page_issues_the_same_number_of_queries_for_10_and_500(support_client, configured_partitions):
    [first] = make_configurations(configured_partitions["prod"], 1)
    ProvisioningStep.objects.bulk_create([ProvisioningStep(configuration=first, name=n, position=i)
                                          for i, n in enumerate(StepName.values)])
    make_configurations(configured_partitions["prod"], 9, prefix="u")
    url = reverse("dashboard:configuration", args=[first.pk])
    small = count_queries(support_client, url)
    live_small = count_queries(support_client, reverse("dashboard:configuration_live", args=[first.pk]))
    make_configurations(configured_partitions["prod"], 490, prefix="v")
    # This configuration's own history grows too: many checks, DMARC changes and audit entries, all its records.
    from django.utils import timezone

    from provisioning.models import RecordCheck, VerificationCheck
    from tenants.models import AuditEntry

    now = timezone.now()
    VerificationCheck.objects.bulk_create([VerificationCheck(configuration=first, ran_at=now, trigger="schedule",
                                                             dkim_verified=False, return_path_verified=False)
                                           for _ in range(200)])
    AuditEntry.objects.bulk_create([AuditEntry(configuration=first, action="ramp_dmarc", before="none",
                                               after="quarantine_test", actor="x", details={
                                                   "record_value": "v=DMARC1", "dwell_overridden": False,
                                                   "readiness_overridden": False, "readiness_note": ""})
                                    for _ in range(50)]
                                   + [AuditEntry(configuration=first, action="state_change", actor="system",
                                                 task="check_dns", before="active", after="drift") for _ in range(50)])
    RecordCheck.objects.bulk_create([RecordCheck(configuration=first, name=f"n{i}.prod.ardamails.com", type="TXT",
                                                 purpose="dmarc", expected="x", checked_at=now) for i in range(3)])
    large = count_queries(support_client, url)
    live_large = count_queries(support_client, reverse("dashboard:configuration_live", args=[first.pk]))
    print(f"configuration page: {small} queries with 10 configurations, {large} with 500; live fragment {live_small}/{live_large}")
    assert small == large and live_small == live_large


def listed(html: str) -> list[str]:
    """The sending domains in the overview's table, in the order shown."""
    if 'id="configurations"' not in html:
        return []
    start = html.index('id="configurations"')
    table = html[start:html.index("</table>", start)]
    return re.findall(r'<a href="/configurations/\d+/">([^<]+)</a>', table)


def next_link(html: str) -> str | None:
    """The query of the page's Next link, as a browser would follow it (None on the last page)."""
    found = re.search(r'<a href="\?([^"]*)">Next →</a>', html)
    return found and found.group(1).replace("&amp;", "&")


def every_page(client, url: str, query: str = "") -> list[list[str]]:
    """The domains of each page, following Next from the first page to the last."""
    pages = []
    while query is not None:
        html = client.get(f"{url}?{query}").content.decode()
        pages.append(listed(html))
        query = next_link(html)
        assert len(pages) < 20, "Next never ends"
    return pages


def domains(**filters) -> list[str]:
    return list(EmailConfiguration.objects.filter(**filters).order_by("sending_domain")
                .values_list("sending_domain", flat=True))


def test_the_overview_searches_filters_and_pages(support_client, configured_partitions):
    make_configurations(configured_partitions["prod"], 120)
    EmailConfiguration.objects.filter(tenant__slug="t00007").update(status="drift")
    url = reverse("dashboard:partition", args=["prod"])
    html = support_client.get(url).content.decode()
    assert '<span class="muted">120 configurations</span>' in html and "Page 1" not in html
    assert html.count('<tr>\n      <td>Tenant') == 50 and "First page" not in html
    html = support_client.get(url, {"q": "t00007"}).content.decode()
    assert "orders.t00007.prod.ardamails.com" in html and "orders.t00008.prod" not in html
    html = support_client.get(url, {"status": "drift"}).content.decode()
    assert "1 configuration<" in html and "orders.t00007.prod.ardamails.com" in html
    html = support_client.get(url, {"dmarc": "reject"}).content.decode()
    assert "Nothing matches these filters." in html


@pytest.mark.parametrize("url_name, args", [("dashboard:partition", ["prod"]), ("dashboard:configurations", [])])
def test_next_shows_exactly_the_rows_after_the_last_one_in_domain_order(
        support_client, configured_partitions, url_name, args):
    make_configurations(configured_partitions["prod"], 120)
    make_configurations(configured_partitions["dev"], 5, prefix="d")
    url = reverse(url_name, args=args)
    first = support_client.get(url).content.decode()
    expected = domains(partition__name="prod") if args else domains()
    last = EmailConfiguration.objects.get(sending_domain=expected[49])
    assert next_link(first) == f"after={last.pk}"
    second = support_client.get(url, {"after": last.pk}).content.decode()
    assert listed(second) == expected[50:100]
    assert '<a href="?">← First page</a>' in second
    pages = every_page(support_client, url)
    assert [len(p) for p in pages] == [50, 50, len(expected) - 100] and sum(pages, []) == expected


def stats(configuration, bounce_rate):
    from django.utils import timezone

    from events.models import EventStats

    EventStats.objects.create(configuration=configuration, bounce_rate_7d=bounce_rate, complaint_rate_7d=bounce_rate,
                              computed_at=timezone.now())


@pytest.mark.parametrize("sort", ["-bounce_rate", "bounce_rate", "-complaint_rate", "complaint_rate"])
def test_pages_sorted_by_a_rate_follow_ties_and_missing_rates_in_order(support_client, configured_partitions, sort):
    """90 rows with seven rates (ties straddle the first page's end), then 20 without a rate and 20
    with no counts at all: those come last, by domain, and the second page ends among them."""
    rows = make_configurations(configured_partitions["prod"], 130)
    rates = {}
    for i, c in enumerate(rows):
        rates[c.sending_domain] = (i * 5 % 7) / 100 if i < 90 else None
        if i < 110:
            stats(c, rates[c.sending_domain])
    rated = sorted((d for d, r in rates.items() if r is not None),
                   key=lambda d: (-rates[d] if sort.startswith("-") else rates[d], d))
    expected = rated + sorted(d for d, r in rates.items() if r is None)
    pages = every_page(support_client, reverse("dashboard:partition", args=["prod"]), f"sort={sort}")
    assert [len(p) for p in pages] == [50, 50, 30]
    assert sum(pages, []) == expected
    assert rates[expected[49]] == rates[expected[50]]  # the first page ended inside a tie


@pytest.mark.parametrize("sort", ["-bounce_rate", "bounce_rate"])
def test_a_marker_whose_rate_changes_between_two_pages_skips_and_repeats_nothing(
        support_client, configured_partitions, sort):
    """The roll-up recounts rates every minute: the next page goes on from the rate the marker row
    showed (the link's `at`), not from its rate now."""
    rows = make_configurations(configured_partitions["prod"], 120)
    for i, c in enumerate(rows):
        stats(c, None if i >= 110 else (i + 1) / 1000)
    url = reverse("dashboard:partition", args=["prod"])
    first = support_client.get(url, {"sort": sort}).content.decode()
    query = next_link(first)
    marker = EmailConfiguration.objects.get(pk=query.split("after=")[1].split("&")[0])
    assert f"&at={marker.event_stats.bounce_rate_7d!r}" in query
    from events.models import EventStats

    EventStats.objects.filter(configuration=marker).update(bounce_rate_7d=0.0005 if sort.startswith("-") else 0.9)
    seen = listed(first) + listed(support_client.get(f"{url}?{query}").content.decode())
    assert len(seen) == 100 and len(set(seen)) == 100
    # Past the last rated row, the marker has no rate: the link says so, and the unrated rows follow.
    last_rated = sorted(rows[:110], key=lambda c: c.pk)[0 if sort.startswith("-") else -1]
    html = support_client.get(url, {"sort": sort, "after": last_rated.pk, "at": "none"}).content.decode()
    assert listed(html) == sorted(c.sending_domain for c in rows[110:] if c.sending_domain > last_rated.sending_domain)


@pytest.mark.parametrize("at", ["x", "-0.5", "1.5", "nan", "inf", "1e400"])
def test_a_rate_marker_that_is_not_a_rate_is_refused_with_a_sentence(support_client, configured_partitions, at):
    make_configurations(configured_partitions["prod"], 3)
    html = support_client.get(reverse("dashboard:partition", args=["prod"]),
                              {"sort": "-bounce_rate", "after": 1, "at": at}).content.decode()
    assert "<li>The page marker is not valid; start from the first page.</li>" in html and listed(html) == []


def test_filters_stay_applied_on_every_page(support_client, configured_partitions):
    rows = make_configurations(configured_partitions["prod"], 150)
    EmailConfiguration.objects.filter(pk__in=[c.pk for i, c in enumerate(rows) if i % 4]).update(status="drift")
    url = reverse("dashboard:partition", args=["prod"])
    pages = every_page(support_client, url, "status=drift&q=t000")
    assert [len(p) for p in pages] == [50, 25]  # three in four of t00000 … t00099
    assert sum(pages, []) == domains(status="drift", tenant__slug__startswith="t000")
    html = support_client.get(url, {"status": "drift", "q": "t000"}).content.decode()
    assert next_link(html).startswith("status=drift&q=t000&after=")


def test_a_row_that_left_the_filter_still_marks_where_the_next_page_starts(support_client, configured_partitions):
    make_configurations(configured_partitions["prod"], 60, status="drift")
    url = reverse("dashboard:partition", args=["prod"])
    query = next_link(support_client.get(url, {"status": "drift"}).content.decode())
    marker = EmailConfiguration.objects.get(pk=query.rsplit("=", 1)[1])
    marker.status = "active"  # repaired between the two pages
    marker.save()
    html = support_client.get(f"{url}?{query}").content.decode()
    assert listed(html) == domains(status="drift")[49:] and "page marker" not in html


@pytest.mark.parametrize("after", ["abc", "-5", "0", "1.5", str(2**70)])
def test_a_page_marker_that_is_not_an_id_is_refused_with_a_sentence(support_client, configured_partitions, after):
    make_configurations(configured_partitions["prod"], 3)
    response = support_client.get(reverse("dashboard:partition", args=["prod"]), {"after": after, "status": "active"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<li>The page marker is not valid; start from the first page.</li>" in html
    assert listed(html) == [] and '<a href="?status=active">Start from the first page</a>' in html


def test_a_page_marker_of_no_row_in_this_list_gives_the_first_page_with_a_sentence(
        support_client, configured_partitions):
    make_configurations(configured_partitions["prod"], 60)
    [dev] = make_configurations(configured_partitions["dev"], 1, prefix="d")
    url = reverse("dashboard:partition", args=["prod"])
    first = listed(support_client.get(url).content.decode())
    gone = EmailConfiguration.objects.order_by("-pk").first().pk + 1000
    for after in (gone, dev.pk):  # no such configuration; one of another partition
        response = support_client.get(url, {"after": after})
        html = response.content.decode()
        assert response.status_code == 200
        assert "The page marker names no configuration in this list (it may have been removed); this is the first " \
               "page." in html
        assert listed(html) == first and dev.sending_domain not in html and "First page" not in html


def test_the_last_rows_marker_says_nothing_comes_after_it(support_client, configured_partitions):
    [*_, last] = make_configurations(configured_partitions["prod"], 3)
    html = support_client.get(reverse("dashboard:partition", args=["prod"]), {"after": last.pk}).content.decode()
    assert "No configuration comes after the last one shown." in html and listed(html) == []


@pytest.mark.parametrize("url_name, args", [("dashboard:partition", ["prod"]), ("dashboard:configurations", [])])
@pytest.mark.parametrize("sort", ["", "-bounce_rate"])
def test_a_deep_page_issues_as_many_queries_as_the_first(support_client, configured_partitions, url_name, args, sort):
    rows = make_configurations(configured_partitions["prod"], 500)
    for c in rows[::3]:
        stats(c, 0.01)
    url = reverse(url_name, args=args)
    pages = [f"sort={sort}"]
    for _ in range(8):
        pages.append(next_link(support_client.get(f"{url}?{pages[-1]}").content.decode()))
    assert "after=" in pages[-1]
    first, deep = count_queries(support_client, f"{url}?{pages[0]}"), count_queries(support_client, f"{url}?{pages[-1]}")
    print(f"{url}?sort={sort}: {first} queries on the first page, {deep} on the ninth")
    assert first == deep


def test_counts_per_status_and_dmarc_state_are_shown(support_client, configured_partitions):
    make_configurations(configured_partitions["prod"], 3)
    EmailConfiguration.objects.filter(tenant__slug="t00000").update(status="failed")
    html = support_client.get(reverse("dashboard:partition", args=["prod"])).content.decode()
    assert '<span class="badge badge-active">Active</span> 2' in html
    assert '<span class="badge badge-failed">Failed</span> 1' in html
    assert '<span class="badge badge-dmarc-none">p=none (monitor)</span> 3' in html


def test_an_empty_partition_invites_to_onboard(support_client, configured_partitions):
    html = support_client.get(reverse("dashboard:partition", args=["stage"])).content.decode()
    assert "No tenant is onboarded in stage yet." in html


def test_the_onboard_form_shows_the_same_message_as_the_command_line(support_client, configured_partitions):
    response = support_client.post(reverse("dashboard:onboard"), {
        "partition": "prod", "tenant_slug": "postmaster", "tenant_display_name": "X", "config_slug": "orders",
        "from_local_part": "noreply"})
    assert response.status_code == 200
    assert "The tenant slug &#x27;postmaster&#x27; is reserved; choose another." in response.content.decode()
    assert not EmailConfiguration.objects.exists()


def test_onboarding_enqueues_after_commit_and_lands_on_the_configuration_page(
        support_client, configured_partitions, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = support_client.post(reverse("dashboard:onboard"), {
            "partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders",
            "from_local_part": "noreply"})
    configuration = EmailConfiguration.objects.get()
    assert response.status_code == 302 and response["Location"] == configuration.get_absolute_url()
    assert len(callbacks) == 1 and configuration.status == "draft"


def test_the_records_download_as_zone_file_lines_and_csv(support_client, configured_partitions):
    [c] = make_configurations(configured_partitions["prod"], 1)
    c.dkim_host, c.dkim_value = f"20261122pm._domainkey.{c.sending_domain}", "k=rsa; p=" + "A" * 300
    c.return_path_target = "pm.mtasv.net"
    c.save()
    text = support_client.get(reverse("dashboard:configuration_records", args=[c.pk, "txt"])).content.decode()
    assert f'_dmarc.{c.sending_domain}.\t300\tIN\tTXT\t"v=DMARC1; p=none{RUA}"\n' in text
    assert f"pm-bounces.{c.sending_domain}.\t3600\tIN\tCNAME\tpm.mtasv.net.\n" in text
    assert '"k=rsa; p=' + "A" * 246 + '" "' + "A" * 54 + '"' in text
    csv_text = support_client.get(reverse("dashboard:configuration_records", args=[c.pk, "csv"])).content.decode()
    assert csv_text.splitlines()[0] == "purpose,type,name,relative_name,value,ttl,published"
    assert f"dmarc,TXT,_dmarc.{c.sending_domain},_dmarc.orders.t00000,v=DMARC1; p=none{RUA},300,pending" in csv_text


MUTATING = [
    # (url name, POST data, support may?, email admin may?)
    ("dashboard:retry", {}, True, True),
    ("dashboard:check_now", {}, True, True),
    ("dashboard:repair", {}, True, True),
    ("dashboard:ramp_dmarc", {"to": "quarantine_test"}, True, True),
    ("dashboard:ramp_dmarc", {"to": "reject_test"}, False, True),
    ("dashboard:offboard", {}, False, True),
    ("dashboard:send_test_email", {"to": "a@example.com"}, True, True),
]


@pytest.fixture
def target(configured_partitions):
    [c] = make_configurations(configured_partitions["prod"], 1, status="failed")
    return c


@pytest.mark.parametrize("name, data, support_may, admin_may", MUTATING)
def test_anonymous_users_are_sent_to_login_by_every_mutating_view(client, target, name, data, support_may, admin_may):
    response = client.post(reverse(name, args=[target.pk]), data)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# What each action must have done when it is allowed (and must not have done when refused).
# Each entry: url name, POST data, the target's starting fields, a check of the effect.
def _old():
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(days=30)


ACTIONS = {
    "retry": ("dashboard:retry", {}, {"status": "failed"},
              lambda c, callbacks: len(callbacks) == 1),
    "check now": ("dashboard:check_now", {}, {"status": "verifying", "postmark_domain_id": 7, "postmark_webhook_id": 9},
                  lambda c, callbacks: len(callbacks) == 1 and c.held_for == "verify"),
    # Queued for a worker (test_drift.py runs it); here the view must have taken the row and queued it.
    "repair": ("dashboard:repair", {}, {"status": "drift", "dkim_host": "2026pm._domainkey.orders.t00000.prod.ardamails.com",
                                        "dkim_value": "k=rsa; p=MIGf", "return_path_target": "pm.mtasv.net"},
               lambda c, callbacks: len(callbacks) == 1 and c.held_for == "repair"),
    "ramp to quarantine test": ("dashboard:ramp_dmarc", {"to": "quarantine_test"}, {},
                                lambda c, callbacks: c.dmarc_state == "quarantine_test"),
    "ramp to reject test": ("dashboard:ramp_dmarc", {"to": "reject_test"}, {"dmarc_state": "quarantine"},
                            lambda c, callbacks: c.dmarc_state == "reject_test"),
    "offboard": ("dashboard:offboard", {}, {},  # queued for a worker (test_offboarding.py runs it)
                 lambda c, callbacks: len(callbacks) == 1 and (c.status, c.held_for) == ("offboarding", "offboard")),
    # Sending itself is tested in test_sending.py; here the view must take the request and answer
    # with the validation message (nothing reaches Postmark for a bad address).
    "send test email": ("dashboard:send_test_email", {"to": "not-an-address"}, {}, None),
}
SUPPORT_MAY = {"retry", "check now", "repair", "ramp to quarantine test", "send test email"}


def _act(client, configured_partitions, action, capture):
    name, data, fields, _ = ACTIONS[action]
    [c] = make_configurations(configured_partitions["prod"], 1)
    EmailConfiguration.objects.filter(pk=c.pk).update(
        **{"dkim_verified": True, "return_path_verified": True, "dmarc_changed_at": _old(), **fields})
    if name == "dashboard:ramp_dmarc":
        reported(c)  # the receivers' reports say the next step is safe
    with capture(execute=False) as callbacks:
        response = client.post(reverse(name, args=[c.pk]), data)
    c.refresh_from_db()
    if ACTIONS[action][3] is None:  # judged by the message the view left for the next page
        callbacks = [str(m) for m in response.wsgi_request._messages]
    return response, c, callbacks


def _sent_validation_message(c, messages):
    return messages == ["Recipient: 'not-an-address' is not an email address."]


@pytest.mark.parametrize("action", ACTIONS)
def test_support_users_may_act_or_are_refused_with_403_and_no_effect(
        harness, support_client, configured_partitions, action, django_capture_on_commit_callbacks):
    response, c, callbacks = _act(support_client, configured_partitions, action, django_capture_on_commit_callbacks)
    done = (ACTIONS[action][3] or _sent_validation_message)(c, callbacks)
    if action in SUPPORT_MAY:
        assert response.status_code == 302 and done, response.content[:300]
    else:
        assert response.status_code == 403 and not done


@pytest.mark.parametrize("action", ACTIONS)
def test_email_admins_may_use_every_action(
        harness, admin_client_ea, configured_partitions, action, django_capture_on_commit_callbacks):
    response, c, callbacks = _act(admin_client_ea, configured_partitions, action, django_capture_on_commit_callbacks)
    assert response.status_code == 302 and (ACTIONS[action][3] or _sent_validation_message)(c, callbacks)


def test_every_mutating_view_refuses_get(admin_client_ea, target):
    for name, *_ in MUTATING:
        assert admin_client_ea.get(reverse(name, args=[target.pk])).status_code == 405


def test_csrf_is_enforced_on_mutating_views(email_admin_user, target):
    client = Client(enforce_csrf_checks=True)
    client.force_login(email_admin_user)
    for name, data, *_ in MUTATING:
        assert client.post(reverse(name, args=[target.pk]), data).status_code == 403
    assert client.post(reverse("dashboard:onboard"), {"partition": "prod"}).status_code == 403
    assert EmailConfiguration.objects.get(pk=target.pk).status == "failed"


def test_buttons_a_support_user_may_not_use_are_not_shown(support_user, email_admin_user, target):
    from datetime import timedelta

    from django.utils import timezone

    EmailConfiguration.objects.filter(pk=target.pk).update(
        status="active", dkim_verified=True, return_path_verified=True, dmarc_state="quarantine",
        dmarc_changed_at=timezone.now() - timedelta(days=30))
    pages = {}
    for user in (support_user, email_admin_user):
        client = Client()
        client.force_login(user)
        pages[user.username] = client.get(reverse("dashboard:configuration", args=[target.pk])).content.decode()
    support_html, admin_html = pages[support_user.username], pages[email_admin_user.username]
    assert 'id="offboard"' not in support_html and 'id="offboard"' in admin_html
    assert 'data-ramp="reject_test"' not in support_html and 'data-ramp="reject_test"' in admin_html
    assert 'data-ramp="quarantine_test"' in support_html  # stepping back is for everyone



ONBOARD_DATA = {"partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders",
                "from_local_part": "noreply"}


def test_onboarding_needs_a_role(client, configured_partitions, support_user):
    assert client.post(reverse("dashboard:onboard"), ONBOARD_DATA)["Location"].startswith(reverse("login"))
    from django.contrib.auth import get_user_model

    no_role = get_user_model().objects.create_user("staff-no-role", password="x", is_staff=True)
    client.force_login(no_role)
    assert client.get(reverse("dashboard:onboard")).status_code == 403
    assert client.post(reverse("dashboard:onboard"), ONBOARD_DATA).status_code == 403
    client.force_login(support_user)
    assert client.post(reverse("dashboard:onboard"), ONBOARD_DATA).status_code == 302
    assert EmailConfiguration.objects.count() == 1


@pytest.mark.parametrize("name, data, support_may, admin_may", MUTATING)
def test_staff_without_a_role_may_view_but_not_act(client, target, name, data, support_may, admin_may):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("viewer", password="x", is_staff=True))
    assert client.get(reverse("dashboard:configuration", args=[target.pk])).status_code == 200
    assert client.post(reverse(name, args=[target.pk]), data).status_code == 403


@pytest.mark.parametrize("path, sentence", [
    ("/configurations/?q=%00", "The search text contains a NUL character (\\0); remove it."),
    ("/partitions/prod/?q=acme%00", "The search text contains a NUL character (\\0); remove it."),
    ("/configurations/?status=nope", "&#x27;nope&#x27; is not a configuration status."),
    ("/partitions/prod/?dmarc=%00", "&#x27;\x00&#x27; is not a DMARC state."),
])
def test_search_input_the_database_cannot_take_is_refused_with_a_sentence(support_client, configured_partitions,
                                                                           path, sentence):
    make_configurations(configured_partitions["prod"], 3)
    response = support_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert sentence in html and "Nothing matches these filters." in html


def test_an_offboarded_configuration_offers_onboarding_again(support_client, configured_partitions,
                                                              django_capture_on_commit_callbacks):
    [c] = make_configurations(configured_partitions["prod"], 1, status="offboarded")
    html = support_client.get(reverse("dashboard:configuration", args=[c.pk])).content.decode()
    assert 'id="onboard-again"' in html and "is offboarded" in html
    with django_capture_on_commit_callbacks() as callbacks:
        response = support_client.post(reverse("dashboard:onboard_again", args=[c.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    assert EmailConfiguration.objects.get(pk=c.pk).status == "draft"
