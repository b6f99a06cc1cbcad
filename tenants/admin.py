from django.contrib import admin

from .models import AuditEntry, EmailConfiguration, Partition, Tenant
from .roles import Actor


class PartitionScopedMixin:
    """A person limited to some partitions (tenants.roles) sees only their rows here too."""

    partition_field = "partition__name"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        actor = Actor.of(request.user)
        if actor.partitions is None:
            return rows
        return actor.visible(rows, self.partition_field).distinct()


class ReadOnlyAdminMixin:
    """For rows written only by services (or deployment configuration): shown, never edited here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Partition)
class PartitionAdmin(PartitionScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    partition_field = "name"
    """Read-only: partitions come from deployment configuration (`manage.py sync_partitions`)."""

    list_display = ("name", "infrastructure", "mail_zone", "delivery_type", "hosted_zone_id", "synced_at")
    list_filter = ("infrastructure", "delivery_type")
    search_fields = ("name", "mail_zone")


@admin.register(Tenant)
class TenantAdmin(PartitionScopedMixin, admin.ModelAdmin):
    partition_field = "configurations__partition__name"  # a tenant with a configuration there
    list_display = ("slug", "display_name", "created_at")
    search_fields = ("slug", "display_name")

    def get_readonly_fields(self, request, obj=None):
        # The slug is part of every sending domain already provisioned for the tenant.
        return ("slug",) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # configurations are offboarded, not deleted (PROTECT would refuse anyway)


@admin.register(EmailConfiguration)
class EmailConfigurationAdmin(PartitionScopedMixin, admin.ModelAdmin):
    list_display = (
        "sending_domain", "tenant", "partition", "status", "dmarc_state",
        "dkim_verified", "return_path_verified", "verification_checked_at",
    )
    list_filter = ("partition", "status", "dmarc_state", "dkim_verified", "return_path_verified")
    search_fields = ("sending_domain", "tenant__slug", "tenant__display_name")
    list_select_related = ("tenant", "partition")
    raw_id_fields = ("tenant",)
    # The encrypted token is not editable and so never rendered; show only whether it is set.
    # State changes go through the services (they publish DNS and keep the audit log), so the
    # admin shows state but does not edit it.
    readonly_fields = (
        "sending_domain", "status", "status_changed_at", "last_error", "dmarc_state", "dmarc_changed_at",
        "token_stored", "postmark_server_id", "postmark_server_link", "postmark_domain_id", "postmark_webhook_id",
        "dkim_host", "dkim_value", "return_path_target", "dkim_verified", "return_path_verified",
        "verification_checked_at", "verification_started_at", "verification_attempts", "drift_checked_at",
        "due_at", "held_for", "held_until", "created_at", "updated_at",
    )

    def has_add_permission(self, request):
        return False  # onboarding validates, creates and queues provisioning: use the Onboard page

    def has_change_permission(self, request, obj=None):
        # Saving here would write every column back, undoing whatever a worker wrote meanwhile;
        # every change goes through the lifecycle's services instead.
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # deleting would orphan the Postmark server, domain, webhook and DNS: offboard

    def get_readonly_fields(self, request, obj=None):
        # Once created, the identity fields define the sending domain at the providers: fixed.
        identity = ("tenant", "partition", "config_slug", "from_local_part") if obj else ()
        return identity + self.readonly_fields

    @admin.display(boolean=True, description="Server token stored")
    def token_stored(self, obj):
        return obj.has_server_token


@admin.register(AuditEntry)
class AuditEntryAdmin(PartitionScopedMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    partition_field = "partition"
    """The audit log: shown, never added to, changed or deleted here (tenants.audit)."""

    list_display = ("at", "actor", "task", "action", "subject", "partition", "before", "after", "outcome")
    list_filter = ("action", "outcome")  # the dashboard's /audit/ filters by partition, actor and days
    search_fields = ("subject",)
    ordering = ("-at", "-id")
    show_full_result_count = False  # a log of millions: no COUNT(*) of all of it on every page
    actions = None  # not even the bulk "delete selected"
