"""Every page of the dashboard. A view: permission (from the lifecycle's table, through the
service), form, one service call, redirect. Pages read rows only; no view calls a provider except
through an action a person asked for (opening the Health page asks for its checks).
"""

import hashlib
import re
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from events import dmarc_reports
from events.dmarc_reports import ImportOutcome, import_file
from events.models import DmarcReport, ReportSource
from health.results import Status, count
from health.services import platform_check
from provisioning import bulk
from provisioning.dkim_rotation import configuration_rotate_dkim
from provisioning.dmarc import configuration_ramp_dmarc, is_emergency_relax
from provisioning.drift import configuration_repair
from provisioning.models import BulkOnboarding
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import (
    configuration_onboard,
    configuration_onboard_again,
    configuration_retry,
)
from provisioning.plan import onboarding_plan
from provisioning.providers import Providers
from provisioning.sending import configuration_send_test_email
from provisioning.verification import configuration_check_now
from tenants.lifecycle import ACTIONS, ActionRefused
from tenants.models import DmarcState, EmailConfiguration, Partition
from tenants.partitions import find_partition
from tenants.report_address import external_destination_record
from tenants.roles import (
    EMAIL_ADMIN,
    EMAIL_ADMIN_GROUP,
    ROLE_REFUSALS,
    SUPPORT,
    SUPPORT_GROUP,
    Actor,
    role_required,
)

from . import queries
from .forms import (
    AuditFilterForm,
    EventFilterForm,
    OnboardForm,
    PageForm,
    RampForm,
    SearchForm,
    TestEmailForm,
    form_errors,
    onboarding_row,
)
from .presenters import (
    FRAGMENTS,
    attention_rows,
    configuration_context,
    record_rows,
    records_csv,
    settled_row,
    status_document,
    zone_file_lines,
)

PAGE_SIZE = 50
LEVELS = {"success": messages.SUCCESS, "info": messages.INFO, "warning": messages.WARNING, "error": messages.ERROR}


def home(request):
    actor = Actor.of(request.user)
    return render(request, "dashboard/home.html", {
        "rows": queries.summary_by_partition(actor=actor), "counts": queries.partition_counts(None, actor=actor),
        "attention": actor.visible(queries.needs_attention()).count(),
    })


def _partition(request, name: str) -> Partition:
    """The partition named in the URL or a filter, if the person may see it; 404 otherwise (a
    partition outside their work is not theirs to know of)."""
    partition = find_partition(name)
    if partition is None or not Actor.of(request.user).works_in(partition.name):
        raise Http404("There is no such partition.")
    return partition


def attention(request):
    """Every configuration that needs a person, oldest first, each with why and what to do; with
    `?row=<id>` only that configuration's row (the page follows the work a row's button started)."""
    if "row" in request.GET:
        return _attention_row(request, request.GET["row"])
    actor, partition = Actor.of(request.user), None
    if request.GET.get("partition"):
        partition = _partition(request, request.GET["partition"])
    rows = actor.visible(queries.needs_attention(partition=partition))
    # The page's ids first, then only those 50 rows whole: the sort reads every matching row's few
    # columns, not its wide ones (60 ms instead of 145 at 10,000 matches).
    page = Paginator(rows.values_list("pk", flat=True), PAGE_SIZE).get_page(request.GET.get("page"))
    ids = list(page.object_list)
    loaded = {c.pk: c for c in rows.filter(pk__in=ids)}
    return render(request, "dashboard/attention.html", {
        "page": page, "rows": attention_rows([loaded[pk] for pk in ids if pk in loaded], actor),
        "partition": partition,
        "partitions": actor.visible(Partition.objects.all(), "name"),
    })


def _attention_row(request, pk: str):
    if not re.fullmatch(r"[0-9]{1,18}", pk):
        raise Http404("There is no such configuration.")
    configuration = _configuration(request, int(pk))
    rows = (attention_rows(queries.needs_attention().filter(pk=configuration.pk), Actor.of(request.user))
            or [settled_row(configuration)])
    return render(request, "dashboard/fragments/attention_rows.html", {"rows": rows})


@role_required(SUPPORT)
def health(request):
    """Every health check, run now: the platform's, then each partition's. Its provider calls are
    reads with short timeouts, one attempt, and none again after a provider's first timeout, so a
    hung provider costs the page seconds, not minutes (health.clients); "Check again" reloads."""
    checks = platform_check(among=Actor.of(request.user).visible(Partition.objects.all(), "name"),
                            token_sample=settings.HEALTH_PAGE_TOKEN_SAMPLE)
    return render(request, "dashboard/health.html", {
        "checks": checks, "problems": count(checks, Status.PROBLEM), "warnings": count(checks, Status.WARNING),
    })


def reports(request):
    """The aggregate reports received, newest first, 50 from `?after=<id of the last one shown>` on;
    email admins upload report files here (each file's outcome is said on this page: stored,
    imported before, or refused and why)."""
    results, actor = [], Actor.of(request.user)
    if request.method == "POST":
        if not actor.may(EMAIL_ADMIN):
            raise PermissionDenied(ROLE_REFUSALS[EMAIL_ADMIN])
        if actor.partitions is not None:  # a report file may speak for any partition's domains
            raise PermissionDenied("Uploading reports needs access to every partition: a file may cover any of "
                                   "them. Ask an email admin who works in all partitions.")
        results = _upload(request)
    form, page = PageForm(request.GET), queries.KeysetPage.empty()
    if form.is_valid():
        page = queries.report_page(_visible_reports(actor), after=form.cleaned_data["after"], limit=PAGE_SIZE)
    return render(request, "dashboard/reports.html", {"page": page, "form": form, "results": results,
                                                       "max_files": MAX_UPLOAD_FILES,
                                                       "max_bytes": settings.DMARC_REPORT_MAX_BYTES},
                  status=400 if any(r.status == "refused" for r in results) else 200)


MAX_UPLOAD_FILES = 20


def _visible_reports(actor):
    """The reports about domains in the partitions `actor` may see (a policy domain is a sending
    domain under a partition's mail zone, or the zone itself)."""
    reports = DmarcReport.objects.all()
    if actor.partitions is None:
        return reports
    inside = Q(pk__in=[])
    for zone in Partition.objects.filter(name__in=actor.partitions).values_list("mail_zone", flat=True):
        inside |= Q(policy_domain=zone) | Q(policy_domain__endswith="." + zone)
    return reports.filter(inside)


def _upload(request) -> list[ImportOutcome]:
    files = request.FILES.getlist("files")
    if not files:
        return [ImportOutcome("", "refused", "Choose at least one report file (.xml, .xml.gz, .gz or .zip).")]
    if len(files) > MAX_UPLOAD_FILES:
        return [ImportOutcome("", "refused", f"Upload at most {MAX_UPLOAD_FILES} files at once; nothing was stored.")]
    actor = Actor.of(request.user)
    outcomes = []
    for upload in files:
        if upload.size > settings.DMARC_REPORT_MAX_BYTES:
            outcomes.append(ImportOutcome(upload.name, "refused", f"{upload.name}: refused, nothing stored: it is "
                                                                  f"larger than {settings.DMARC_REPORT_MAX_BYTES:,} bytes."))
            continue
        outcomes += import_file(upload.name, upload.read(), source=ReportSource.UPLOAD, actor_name=actor.name)
    return outcomes


def audit_log(request):
    """The audit log, newest first, filtered by actor, action, partition, configuration and days."""
    actor = Actor.of(request.user)
    form = AuditFilterForm(request.GET, actor=actor)
    entries, next_after, error = [], "", ""
    if form.is_valid():
        entries, next_after = queries.audit_entries(**form.cleaned_data, limit=PAGE_SIZE, among=actor.partitions)
    else:
        error = form_errors(form)
    params = request.GET.copy()
    params.pop("after", None)
    return render(request, "dashboard/audit.html", {
        "form": form, "entries": entries, "error": error, "query_string": params.urlencode(),
        "next_after": next_after, "first_page": not request.GET.get("after"),
        "filtered": any(request.GET.get(k) for k in AuditFilterForm.base_fields if k != "after"),
        "retention_days": settings.AUDIT_RETENTION_DAYS,
        "partitions": actor.visible(Partition.objects.all(), "name").values_list("name", flat=True)})


def partition_list(request):
    partitions = Actor.of(request.user).visible(Partition.objects.all(), "name").annotate(
        configuration_count=Count("configurations"))
    return render(request, "dashboard/partition_list.html", {
        "rows": [(p, p.missing_secrets(), external_destination_record(p)) for p in partitions]})


def _overview(request, partition):
    """The partition overview's and the all-configurations list's page: search, filters, sort, and
    50 rows from `?after=<id of the last row shown>` on (keyset pages; the Next link keeps the
    other parameters)."""
    actor, form = Actor.of(request.user), SearchForm(request.GET)
    data = {"q": "", "status": "", "dmarc": "", "sort": ""}
    page = queries.KeysetPage.empty()
    if form.is_valid():
        data = {name: form.cleaned_data[name] for name in data}
        page = queries.configuration_page(partition=partition, actor=actor, after=form.cleaned_data["after"],
                                          at=form.cleaned_data["at"], limit=PAGE_SIZE, **data)
    _with_report_windows(page.rows)
    params = request.GET.copy()
    params.pop("after", None)
    params.pop("at", None)
    return {
        "partition": partition, "page": page, "form": form, **data,
        "filtered": any(request.GET.get(k) for k in ("q", "status", "dmarc")),
        "counts": queries.partition_counts(partition, actor=actor),
        "query_string": params.urlencode(),
        "sort_links": _sort_links(params, data["sort"]),
        "bounce_threshold": settings.EVENTS_BOUNCE_RATE_THRESHOLD,
        "complaint_threshold": settings.EVENTS_COMPLAINT_RATE_THRESHOLD,
        "report_window_days": settings.DMARC_READY_WINDOW_DAYS,
    }


def _with_report_windows(rows) -> None:
    """Each row's DMARC pass rate over the readiness window and its next step's readiness: one
    grouped query for the page."""
    rows = list(rows)
    windows = dmarc_reports.windows_for([c.pk for c in rows], settings.DMARC_READY_WINDOW_DAYS)
    for c in rows:
        c.report_window = windows[c.pk]
        c.next_step = dmarc_reports.judge(c.report_window) if c.dmarc_state != DmarcState.REJECT else None


def _sort_links(params, current: str) -> dict[str, dict]:
    """Per rate column: the query that sorts by it (highest first, then lowest on a second click)
    and the arrow it shows now."""
    links = {}
    for name in ("bounce_rate", "complaint_rate"):
        query = params.copy()
        query["sort"] = name if current == "-" + name else "-" + name
        arrow = {"-" + name: " ↓", name: " ↑"}.get(current, "")
        links[name] = {"query": query.urlencode(), "arrow": arrow}
    return links


def partition_detail(request, name):
    partition = _partition(request, name)
    context = _overview(request, partition)
    context["missing"] = partition.missing_secrets()
    context["report_destination"] = external_destination_record(partition)
    context["waiting"] = list(queries.dmarc_waiting_longest(partition=partition, limit=5))
    return render(request, "dashboard/partition_detail.html", context)


def configuration_list(request):
    return render(request, "dashboard/configuration_list.html", _overview(request, None))


@role_required(SUPPORT)
def onboard(request):
    data = request.POST if request.method == "POST" else None  # an empty POST is still a submission
    actor = Actor.of(request.user)
    preview = request.method == "POST" and request.POST.get("preview") == "1"
    form = OnboardForm(data, initial={"partition": request.GET.get("partition")}, actor=actor,
                       check_credentials=not preview)
    if preview and form.is_valid():
        # Plan before apply: what Onboard would do, with nothing created and no provider called.
        data = form.cleaned_data
        plan = onboarding_plan(partition=data["partition"], tenant_slug=data["tenant_slug"],
                               config_slug=data["config_slug"], from_local_part=data["from_local_part"])
        return render(request, "dashboard/onboard.html", {"form": form, "plan": plan})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = configuration_onboard(
                partition=data["partition"], tenant_slug=data["tenant_slug"],
                tenant_display_name=data["tenant_display_name"], config_slug=data["config_slug"],
                from_local_part=data["from_local_part"], actor=actor,
            )
        except ActionRefused as exc:
            if exc.forbidden:
                raise PermissionDenied(exc.message) from None
            form.add_error("config_slug", exc.message)
        else:
            messages.add_message(request, LEVELS[result.level], result.message)
            return redirect("dashboard:configuration", result.configuration_id)
    return render(request, "dashboard/onboard.html", {"form": form})


@role_required(SUPPORT)
def bulk_onboard(request):
    """Upload a CSV: every row checked first; started only when all are valid, or on request the
    valid ones; then the batch's page follows them."""
    actor = Actor.of(request.user)
    context = {"columns": ",".join(bulk.COLUMNS), "pace": settings.BULK_ONBOARD_PER_MINUTE,
               "max_rows": settings.BULK_ONBOARD_MAX_ROWS, "batches": _visible_batches(actor)[:10]}
    if request.method != "POST":
        return render(request, "dashboard/bulk_onboard.html", context)
    upload = request.FILES.get("file")
    if upload is None:
        context["errors"] = ["Choose a CSV file."]
        return render(request, "dashboard/bulk_onboard.html", context, status=400)
    if upload.size > BULK_MAX_BYTES:
        context["errors"] = [f"The file is larger than {BULK_MAX_BYTES:,} bytes; split it."]
        return render(request, "dashboard/bulk_onboard.html", context, status=400)
    try:
        text = upload.read().decode("utf-8")
    except UnicodeDecodeError:
        context["errors"] = ["The file is not UTF-8 text; save it as CSV UTF-8."]
        return render(request, "dashboard/bulk_onboard.html", context, status=400)
    plan = bulk.read_csv(text, validate=partial(onboarding_row, actor=actor))
    valid_only = request.POST.get("valid_only") == "yes"
    context.update(plan=plan, filename=upload.name)
    if request.POST.get("dry_run") == "yes" or not plan.rows or (plan.errors and not valid_only):
        return render(request, "dashboard/bulk_onboard.html", context, status=400 if plan.errors else 200)
    try:
        result = bulk.start(plan, actor=actor, filename=upload.name)
    except ActionRefused as exc:
        if exc.forbidden:
            raise PermissionDenied(exc.message) from None
        context["errors"] = [exc.message]
        return render(request, "dashboard/bulk_onboard.html", context, status=400)
    messages.success(request, f"Started {result.started} configurations; they begin "
                              f"{settings.BULK_ONBOARD_PER_MINUTE:g} a minute.")
    if plan.errors:  # started with the valid rows only: say which were left out
        shown = "; ".join(plan.errors[:20]) + ("; …" if len(plan.errors) > 20 else "")
        messages.warning(request, f"Left out {len(plan.errors)} rows that cannot be onboarded: {shown}")
    return redirect("dashboard:bulk_batch", result.batch.pk)


BULK_MAX_BYTES = 2 * 1024 * 1024


def _visible_batches(actor):
    """The batches whose every configuration is in a partition `actor` may see."""
    batches = BulkOnboarding.objects.all()
    if actor.partitions is None:
        return batches
    return batches.exclude(members__configuration__partition__in=Partition.objects.exclude(name__in=actor.partitions))


def _batch(request, pk):
    return get_object_or_404(_visible_batches(Actor.of(request.user)), pk=pk)


@require_GET
def bulk_batch(request, pk):
    batch = _batch(request, pk)
    context = _bulk_context(batch, request)
    context["fragment"] = _fragment("bulk_progress", context, request)
    return render(request, "dashboard/bulk_batch.html", context)


@require_GET
def bulk_batch_live(request, pk):
    batch = _batch(request, pk)
    context = _bulk_context(batch, request)
    fragment = _fragment("bulk_progress", context, request)
    changed = {} if request.GET.get("have", "") == f"progress:{fragment['version']}" else {"progress": fragment}
    return JsonResponse({"poll_ms": context["poll_ms"], "fragments": changed})


def _bulk_context(batch, request) -> dict:
    counts = queries.bulk_counts(batch)
    page = Paginator(queries.bulk_rows(batch), PAGE_SIZE).get_page(request.GET.get("page"))
    return {"batch": batch, "counts": counts, "page": page,
            "poll_ms": settings.DASHBOARD_POLL_WAITING_MS if counts["under_way"] else 0}


def _configuration(request, pk):
    """The configuration, if the person may see its partition (404 otherwise, as for one that does not exist)."""
    rows = Actor.of(request.user).visible(EmailConfiguration.objects.select_related("tenant", "partition"))
    return get_object_or_404(rows, pk=pk)


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer once a username has failed too often: a page in the site's layout (429)."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    return render(request, "registration/locked_out.html", {
        "failure_limit": settings.AXES_FAILURE_LIMIT, "username": username[:150],
        "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)}, status=429)


def not_found(request, exception):
    """The site's 404: the sentence the view gave (e.g. "There is no such partition."), or a general one."""
    said = exception.args[0] if isinstance(exception, Http404) and exception.args else ""
    message = said if isinstance(said, str) and said.endswith(".") else "There is no such page or configuration."
    return render(request, "404.html", {"message": message}, status=404)


def bad_request(request, exception):
    """A request Django cannot read (too many fields or parameters, a broken multipart body): a
    sentence in the site's layout instead of Django's bare page; nothing was done."""
    return render(request, "400.html", {"message": "This request could not be read (too many fields or "
                                                   "parameters, or a broken upload); nothing was done. Go back "
                                                   "and try again with the form."}, status=400)


def forbidden(request, exception):
    """A refusal of the person's role, in the site's layout: what is missing and who grants it."""
    message = str(exception) or "This needs the support or email admin role."
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"level": "error", "message": message}, status=403)
    return render(request, "403.html", {"message": message, "groups": (SUPPORT_GROUP, EMAIL_ADMIN_GROUP)},
                  status=403)


def _event_filter(request) -> dict:
    """The configuration page's choice of events (?type=Bounce); a bad one is said, not obeyed."""
    form = EventFilterForm({"type": request.GET.get("type", "")})
    if form.is_valid():
        return {"type": form.cleaned_data["type"]}
    return {"error": form_errors(form)}


def configuration_detail(request, pk):
    configuration = _configuration(request, pk)
    context = configuration_context(configuration, user=request.user, event_filter=_event_filter(request))
    context["fragments"] = {name: _fragment(name, context, request) for name in FRAGMENTS}
    return render(request, "dashboard/configuration_detail.html", context)


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def _fragment(name: str, context: dict, request) -> dict:
    html = render_to_string(f"dashboard/fragments/{name}.html", context, request=request)
    # The CSRF token is masked anew on every render: it must not make an unchanged fragment look new.
    version = hashlib.sha256(CSRF_INPUT.sub("", html).encode()).hexdigest()[:16]
    return {"html": html, "version": version}


@require_GET
def configuration_live(request, pk):
    """The page's poll: only the fragments whose content changed since the versions the page holds."""
    configuration = _configuration(request, pk)
    context = configuration_context(configuration, user=request.user, event_filter=_event_filter(request))
    have = dict(pair.split(":", 1) for pair in request.GET.get("have", "").split(",") if ":" in pair)
    changed = {}
    for name in FRAGMENTS:
        fragment = _fragment(name, context, request)
        if have.get(name) != fragment["version"]:
            changed[name] = fragment
    return JsonResponse({"poll_ms": context["poll_ms"], "fragments": changed})


@require_GET
def configuration_export(request, pk):
    """The onboarding as a JSON report (`manage.py status --json` without the live DNS read): records
    as last checked, identities at the provider, verification per region; never a token."""
    configuration = _configuration(request, pk)
    response = JsonResponse(status_document(configuration, None), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{configuration.sending_domain}.json"'
    return response


@require_GET
def configuration_records(request, pk, fmt):
    configuration = _configuration(request, pk)
    rows = record_rows(configuration, list(configuration.steps.all()), list(configuration.record_checks.all()))
    if fmt == "csv":
        response = HttpResponse(records_csv(rows), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(zone_file_lines(rows), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{configuration.sending_domain}.{fmt}"'
    return response


def _answer(request, configuration, level: str, message: str):
    """The outcome of an action, where it was asked for: to the page's script as JSON (it shows the
    sentence and follows the work without a reload), or as a message on the page it redirects to."""
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"level": level, "message": message}, status=400 if level == "error" else 200)
    messages.add_message(request, LEVELS[level], message)
    return redirect(configuration)


def _act(request, pk, action):
    """Run one service for the signed-in user; its sentence, or its refusal, is the answer."""
    configuration = _configuration(request, pk)
    try:
        result = action(configuration, Actor.of(request.user))
    except ActionRefused as exc:
        if exc.forbidden:
            raise PermissionDenied(exc.message) from None
        return _answer(request, configuration, "error", exc.message)
    return _answer(request, configuration, result.level, result.message)


def _with_form(request, pk, form_class, name, action):
    """Like _act, for an action that takes input: the role first, then the form; nothing happens on
    bad input."""
    if not Actor.of(request.user).may(ACTIONS[name].role):
        raise PermissionDenied(ROLE_REFUSALS[ACTIONS[name].role])
    form = form_class(request.POST)
    if not form.is_valid():
        return _answer(request, _configuration(request, pk), "error", form_errors(form))
    return _act(request, pk, lambda c, actor: action(c, actor, form.cleaned_data))


@require_POST
def configuration_retry_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_retry(configuration_id=c.pk, actor=actor))


@require_POST
def configuration_check_now_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_check_now(configuration_id=c.pk, actor=actor))


@require_POST
def configuration_repair_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_repair(configuration_id=c.pk, actor=actor, queue=True))


@require_POST
def configuration_ramp_view(request, pk):
    form = RampForm(request.POST)
    if form.is_valid() and not form.cleaned_data["confirmed"]:
        configuration = _configuration(request, pk)
        if (is_emergency_relax(configuration.dmarc_state, form.cleaned_data["to"])
                and Actor.of(request.user).may(ACTIONS["relax_dmarc"].role)):
            return _confirm_relax(request, configuration, form.cleaned_data)
    return _with_form(request, pk, RampForm, "ramp_dmarc", lambda c, actor, data: configuration_ramp_dmarc(
        configuration_id=c.pk, actor=actor, to_state=data["to"], reason=data["reason"],
        override_dwell=data["override_dwell"], queue=True))


def _confirm_relax(request, configuration, data):
    """An emergency relax is confirmed first: a page that asks (without JavaScript), or a sentence."""
    if request.headers.get("Accept") == "application/json":
        return _answer(request, configuration, "error", "Confirm the emergency relax first (confirmed=yes).")
    return render(request, "dashboard/confirm_relax.html", {
        "configuration": configuration, "to": DmarcState(data["to"]), "reason": data["reason"]})


@require_POST
def configuration_test_email_view(request, pk):
    return _with_form(request, pk, TestEmailForm, "send_test_email", lambda c, actor, data: configuration_send_test_email(
        configuration_id=c.pk, actor=actor, to=data["to"], providers=Providers.default()))


@require_POST
def configuration_rotate_dkim_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_rotate_dkim(configuration_id=c.pk, actor=actor))


@require_POST
def configuration_offboard_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_offboard(configuration_id=c.pk, actor=actor, queue=True))


@require_POST
def configuration_onboard_again_view(request, pk):
    return _act(request, pk, lambda c, actor: configuration_onboard_again(configuration_id=c.pk, actor=actor))
