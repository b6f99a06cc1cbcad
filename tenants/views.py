from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render

from provisioning.dmarc import dmarc_waiting_longest
from provisioning.services import configuration_onboard

from . import queries, roles
from .forms import OnboardForm
from .models import Partition

PAGE_SIZE = 50


def home(request):
    return render(request, "tenants/home.html", {"rows": queries.summary_by_partition(), "counts": queries.partition_counts(None)})


def partition_list(request):
    partitions = Partition.objects.annotate(configuration_count=Count("configurations"))
    rows = [(p, p.missing_secrets()) for p in partitions]
    return render(request, "tenants/partition_list.html", {"rows": rows})


def _overview(request, partition):
    q, status, dmarc = request.GET.get("q", ""), request.GET.get("status", ""), request.GET.get("dmarc", "")
    results = queries.configuration_search(partition=partition, q=q, status=status, dmarc=dmarc)
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return {
        "partition": partition, "page": page, "q": q, "status": status, "dmarc": dmarc,
        "counts": queries.partition_counts(partition), "query_string": params.urlencode(),
        "statuses": queries.ConfigurationStatus.choices, "dmarc_states": queries.DmarcState.choices,
    }


def partition_detail(request, name):
    partition = get_object_or_404(Partition, name=name)
    context = _overview(request, partition)
    context["missing"] = partition.missing_secrets()
    context["waiting"] = list(dmarc_waiting_longest(partition=partition, limit=5))
    return render(request, "tenants/partition_detail.html", context)


def configuration_list(request):
    return render(request, "tenants/configuration_list.html", _overview(request, None))


@roles.support_required
def onboard(request):
    form = OnboardForm(request.POST or None, initial={"partition": request.GET.get("partition")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            configuration = configuration_onboard(
                partition=data["partition"], tenant_slug=data["tenant_slug"],
                tenant_display_name=data["tenant_display_name"], config_slug=data["config_slug"],
                from_local_part=data["from_local_part"],
            )
        except ValidationError as exc:
            form.add_error("config_slug", exc)
        else:
            messages.success(request, f"Provisioning {configuration.sending_domain} has started.")
            return redirect(configuration)
    return render(request, "tenants/onboard.html", {"form": form})
