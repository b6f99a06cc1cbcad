from django.contrib import admin

from tenants.admin import ReadOnlyAdminMixin

from .models import DmarcChange, ProvisioningStep, RecordCheck, VerificationCheck


@admin.register(ProvisioningStep)
class ProvisioningStepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("configuration", "name", "status", "attempts", "started_at", "finished_at")
    list_filter = ("name", "status")
    search_fields = ("configuration__sending_domain",)
    list_select_related = ("configuration",)


@admin.register(VerificationCheck)
class VerificationCheckAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("configuration", "ran_at", "trigger", "dkim_verified", "return_path_verified", "error")
    list_filter = ("trigger", "dkim_verified", "return_path_verified")
    search_fields = ("configuration__sending_domain",)
    list_select_related = ("configuration",)
    date_hierarchy = "ran_at"


@admin.register(RecordCheck)
class RecordCheckAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("configuration", "purpose", "type", "name", "status", "source", "checked_at")
    list_filter = ("status", "purpose", "type")
    search_fields = ("configuration__sending_domain", "name")
    list_select_related = ("configuration",)


@admin.register(DmarcChange)
class DmarcChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The DMARC audit log: append-only."""

    list_display = ("configuration", "created_at", "actor", "from_state", "to_state", "dwell_overridden", "reason")
    list_filter = ("to_state", "dwell_overridden")
    search_fields = ("configuration__sending_domain", "actor", "reason")
    list_select_related = ("configuration",)
    date_hierarchy = "created_at"
