from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants.models import EmailConfiguration
from tenants.roles import email_admin_required, is_email_admin, support_required
from tenants.secrets import MissingSecret

from .dmarc import NEEDS_EMAIL_ADMIN, DmarcRampError, dmarc_allowed_targets, dmarc_ramp
from .drift import REPAIR_SUPERSEDED, configuration_repair
from .errors import ProviderError
from .offboarding import OffboardError, configuration_offboard
from .presenters import configuration_context, record_rows, records_csv, zone_file_lines
from .providers import Providers
from .sending import SendRefused, configuration_send_test_email
from .services import configuration_retry
from .verification import configuration_check_now


def _configuration(pk):
    return get_object_or_404(EmailConfiguration.objects.select_related("tenant", "partition"), pk=pk)


def _outcome(request, configuration, action, *errors):
    """Run a service that answers with a sentence for the person; its refusals become messages."""
    try:
        messages.success(request, action())
    except errors as exc:
        messages.error(request, str(exc))
    return redirect(configuration)


def _full_context(request, configuration):
    context = configuration_context(configuration, user=request.user)
    context["dmarc_changes"] = list(configuration.dmarc_changes.all()[:10])
    targets = dmarc_allowed_targets(configuration=configuration, user_is_email_admin=context["can_admin"])
    # A button the user's role may not use is not shown at all (the server refuses it with 403 too).
    context["dmarc_targets"] = [
        t for t in targets
        if context["can_admin"] or not (t.direction == "forward" and t.state in NEEDS_EMAIL_ADMIN)
    ]
    context["checks"] = list(configuration.verification_checks.all()[:5])
    return context


def configuration_detail(request, pk):
    configuration = _configuration(pk)
    return render(request, "provisioning/configuration_detail.html", _full_context(request, configuration))


def configuration_live(request, pk):
    """The part of the page that changes while provisioning and verification run (polled by app.js)."""
    configuration = _configuration(pk)
    return render(request, "provisioning/_live.html", _full_context(request, configuration))


def configuration_records(request, pk, fmt):
    configuration = _configuration(pk)
    rows = record_rows(configuration, list(configuration.steps.all()), list(configuration.record_checks.all()))
    if fmt == "csv":
        response = HttpResponse(records_csv(rows), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(zone_file_lines(rows), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{configuration.sending_domain}.{fmt}"'
    return response


@require_POST
@support_required
def configuration_retry_view(request, pk):
    configuration = _configuration(pk)
    if configuration_retry(configuration):
        messages.success(request, "Retrying from the step that failed.")
    else:
        messages.error(request, f"Nothing to retry: {configuration.sending_domain} is {configuration.get_status_display().lower()}.")
    return redirect(configuration)


@require_POST
@support_required
def configuration_check_now_view(request, pk):
    configuration = _configuration(pk)
    messages.info(request, configuration_check_now(configuration=configuration))
    return redirect(configuration)


@require_POST
@support_required
def configuration_repair_view(request, pk):
    configuration = _configuration(pk)
    try:
        checks = configuration_repair(configuration_id=configuration.pk, providers=Providers.default())
    except ProviderError as exc:
        messages.error(request, f"Repair did not complete: {exc}")
        return redirect(configuration)
    bad = [c for c in checks if c.status != "ok"]
    if not checks:
        messages.warning(request, REPAIR_SUPERSEDED)
    elif bad:
        messages.error(request, f"Re-published, but {len(bad)} record(s) still differ; see the records table.")
    else:
        messages.success(request, "Records re-published and confirmed.")
    return redirect(configuration)


@require_POST
@support_required
def configuration_ramp_view(request, pk):
    configuration = _configuration(pk)
    try:
        change = dmarc_ramp(
            configuration_id=configuration.pk, to_state=request.POST.get("to", ""),
            actor=request.user.get_username(), actor_is_email_admin=is_email_admin(request.user),
            reason=request.POST.get("reason", ""), override_dwell=request.POST.get("override_dwell") == "on",
            providers=Providers.default(),
        )
    except DmarcRampError as exc:
        if exc.forbidden:
            return HttpResponse(str(exc), status=403)
        messages.error(request, str(exc))
    else:
        messages.success(request, f"DMARC is now {change.record_value}")
    return redirect(configuration)


@require_POST
@email_admin_required
def configuration_offboard_view(request, pk):
    configuration = _configuration(pk)
    return _outcome(
        request, configuration,
        lambda: configuration_offboard(configuration_id=configuration.pk, providers=Providers.default()),
        OffboardError, ProviderError, MissingSecret,
    )


@require_POST
@support_required
def configuration_test_email_view(request, pk):
    configuration = _configuration(pk)
    return _outcome(
        request, configuration,
        lambda: configuration_send_test_email(
            configuration_id=configuration.pk, to=request.POST.get("to", ""),
            sent_by=request.user.get_username(), providers=Providers.default()),
        SendRefused, ProviderError, MissingSecret,
    )
