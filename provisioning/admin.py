from django.contrib import admin

from tenants.admin import ReadOnlyAdminMixin

from .models import ProvisioningStep, RecordCheck, VerificationCheck


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
