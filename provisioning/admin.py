from django.contrib import admin

from .models import ProvisioningStep


@admin.register(ProvisioningStep)
class ProvisioningStepAdmin(admin.ModelAdmin):
    list_display = ("configuration", "name", "status", "attempts", "started_at", "finished_at")
    list_filter = ("name", "status")
    search_fields = ("configuration__sending_domain",)
    list_select_related = ("configuration",)
    readonly_fields = ("configuration", "name", "position", "started_at", "finished_at", "updated_at")
