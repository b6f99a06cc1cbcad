from django.contrib import admin

from tenants.admin import PartitionScopedMixin, ReadOnlyAdminMixin

from .models import ProvisioningStep, RecordCheck, VerificationCheck


@admin.register(ProvisioningStep)
class ProvisioningStepAdmin(PartitionScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    partition_field = "configuration__partition__name"
    list_display = ("configuration", "name", "status", "attempts", "started_at", "finished_at")
    list_filter = ("name", "status")
    search_fields = ("configuration__sending_domain",)
    list_select_related = ("configuration",)


@admin.register(VerificationCheck)
class VerificationCheckAdmin(PartitionScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    partition_field = "configuration__partition__name"
    list_display = ("configuration", "ran_at", "trigger", "dkim_verified", "return_path_verified", "error")
    list_filter = ("trigger", "dkim_verified", "return_path_verified")
    search_fields = ("configuration__sending_domain",)
    list_select_related = ("configuration",)
    date_hierarchy = "ran_at"


@admin.register(RecordCheck)
class RecordCheckAdmin(PartitionScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    partition_field = "configuration__partition__name"
    list_display = ("configuration", "purpose", "type", "name", "status", "source", "checked_at")
    list_filter = ("status", "purpose", "type")
    search_fields = ("configuration__sending_domain", "name")
    list_select_related = ("configuration",)
