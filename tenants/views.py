from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render

from .models import EmailConfiguration, Partition


def home(request):
    return redirect("partition_list")


def partition_list(request):
    partitions = Partition.objects.annotate(configuration_count=Count("configurations"))
    rows = [(p, p.missing_secrets()) for p in partitions]
    return render(request, "tenants/partition_list.html", {"rows": rows})


def partition_detail(request, name):
    partition = get_object_or_404(Partition, name=name)
    configurations = (
        EmailConfiguration.objects.filter(partition=partition).select_related("tenant").order_by("sending_domain")
    )
    return render(
        request,
        "tenants/partition_detail.html",
        {"partition": partition, "configurations": configurations[:200], "missing": partition.missing_secrets()},
    )


def configuration_detail(request, pk):
    configuration = get_object_or_404(EmailConfiguration.objects.select_related("tenant", "partition"), pk=pk)
    return render(request, "tenants/configuration_detail.html", {"configuration": configuration})
