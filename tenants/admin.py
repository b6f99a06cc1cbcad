from django.contrib import admin

from .models import EmailConfiguration, Partition, Tenant


@admin.register(Partition)
class PartitionAdmin(admin.ModelAdmin):
    """Read-only: partitions come from deployment configuration (`manage.py sync_partitions`)."""

    list_display = ("name", "infrastructure", "mail_zone", "delivery_type", "hosted_zone_id", "synced_at")
    list_filter = ("infrastructure", "delivery_type")
    search_fields = ("name", "mail_zone")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "display_name", "created_at")
    search_fields = ("slug", "display_name")


@admin.register(EmailConfiguration)
class EmailConfigurationAdmin(admin.ModelAdmin):
    list_display = (
        "sending_domain", "tenant", "partition", "status", "dmarc_state",
        "dkim_verified", "return_path_verified", "verification_checked_at",
    )
    list_filter = ("partition", "status", "dmarc_state", "dkim_verified", "return_path_verified")
    search_fields = ("sending_domain", "tenant__slug", "tenant__display_name")
    list_select_related = ("tenant", "partition")
    raw_id_fields = ("tenant",)
    # The encrypted token is not editable and so never rendered; show only whether it is set.
    readonly_fields = (
        "sending_domain", "token_stored", "postmark_server_id", "postmark_server_link", "postmark_domain_id", "postmark_webhook_id",
        "status_changed_at", "provisioning_lease_until", "created_at", "updated_at",
    )

    @admin.display(boolean=True, description="Server token stored")
    def token_stored(self, obj):
        return obj.has_server_token
