from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from . import crypto, naming, secrets
from .validation import (
    validate_config_slug,
    validate_from_local_part,
    validate_partition_name,
    validate_tenant_slug,
)


class DeliveryType(models.TextChoices):
    LIVE = "Live", "Live"
    SANDBOX = "Sandbox", "Sandbox"


class EmailProviderName(models.TextChoices):
    POSTMARK = "postmark", "Postmark"
    SES = "ses", "Amazon SES"


class DnsProviderName(models.TextChoices):
    ROUTE53 = "route53", "Route53"
    CLOUDFLARE = "cloudflare", "Cloudflare"


def parse_inbound_mx(text: str) -> tuple[tuple[int, str], ...]:
    """"10 mxwest.example.org, 20 mxeast.example.org" -> ((10, "mxwest.example.org"), …); the
    format is checked by tenants.partitions when the file is loaded."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        priority, _, host = item.partition(" ")
        pairs.append((int(priority), host.strip().rstrip(".").lower()))
    return tuple(pairs)


class Partition(models.Model):
    """A deployment partition; declared in deployment configuration and loaded by `sync_partitions`.
    Each chooses its email provider (Postmark or SES) and its DNS provider (Route53 or Cloudflare)."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_partition_name])
    infrastructure = models.CharField(max_length=63, help_text="Alpha001 for prod/demo, Alpha002 for dev/stage.")
    mail_zone = models.CharField(
        max_length=253, help_text="From the partition's …-API-PartitionMailZoneName export, e.g. prod.ardamails.com."
    )
    hosted_zone_id = models.CharField(max_length=64, blank=True,
                                      help_text="The DNS provider's zone id; blank = look it up by name.")
    delivery_type = models.CharField(max_length=16, choices=DeliveryType.choices)
    dns_role_arn = models.CharField(max_length=255, blank=True, help_text="Optional IAM role assumed for DNS writes.")
    email_provider = models.CharField(max_length=16, choices=EmailProviderName.choices,
                                      default=EmailProviderName.POSTMARK)
    dns_provider = models.CharField(max_length=16, choices=DnsProviderName.choices, default=DnsProviderName.ROUTE53)
    # SES only: the regions an identity is set up in (comma separated) and an optional SES tenant.
    ses_regions = models.CharField(max_length=200, blank=True)
    ses_tenant = models.CharField(max_length=64, blank=True)
    # Optional inbound MX for every sending domain: "10 mxwest.example.org, 20 mxeast.example.org".
    inbound_mx = models.CharField(max_length=500, blank=True)
    # Optional, after verification: a Postfix relay host (over SSH) that is told to relay each
    # verified domain to `relay_transport` (provisioning/after_verification.py, docs/design.md).
    relay_ssh = models.CharField(max_length=300, blank=True, help_text="user@host[:port] of the relay host.")
    relay_host_key = models.TextField(blank=True, help_text="The relay host's SSH public key line, pinned.")
    relay_transport = models.CharField(max_length=300, blank=True, help_text="e.g. smtp:[mail.example.org]")
    relay_config_directory = models.CharField(max_length=300, blank=True, default="/etc/postfix")
    # Every DMARC record of the partition carries rua=mailto:<this> (docs/dmarc-reports.md).
    dmarc_report_address = models.CharField(max_length=254, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(delivery_type__in=DeliveryType.values), name="partition_delivery_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(email_provider__in=EmailProviderName.values), name="partition_email_provider_valid"
            ),
            models.CheckConstraint(
                condition=Q(dns_provider__in=DnsProviderName.values), name="partition_dns_provider_valid"
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("dashboard:partition", args=[self.name])

    def read_secret(self, name: str) -> str:
        return secrets.read_secret(infrastructure=self.infrastructure, partition=self.name, name=name)

    def secret_label(self, name: str) -> str:
        return secrets.secret_name(infrastructure=self.infrastructure, partition=self.name, name=name)

    def webhook_secrets(self) -> list[str]:
        """Every value of the webhook secret (several during a rotation); the first is current."""
        values = secrets.split_values(self.read_secret(secrets.WEBHOOK_SECRET))
        if not values:
            raise secrets.MissingSecret(self.secret_label(secrets.WEBHOOK_SECRET))
        return values

    @property
    def inbound_mx_hosts(self) -> tuple[tuple[int, str], ...]:
        return parse_inbound_mx(self.inbound_mx)

    @property
    def ses_region_list(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.ses_regions.split(",") if r.strip())

    @property
    def relay_target(self) -> tuple[str, str, int]:
        """relay_ssh as (user, host, port)."""
        user, _, rest = self.relay_ssh.rpartition("@")
        host, _, port = rest.partition(":")
        return user, host, int(port or 22)

    def secret_names(self) -> tuple[str, ...]:
        """The secrets this partition's providers need (secrets.py names them)."""
        return secrets.needed(email_provider=self.email_provider, dns_provider=self.dns_provider,
                              relay=bool(self.relay_ssh))

    def missing_secrets(self) -> list[str]:
        return secrets.missing_secrets(infrastructure=self.infrastructure, partition=self.name,
                                       names=self.secret_names())


class Tenant(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[validate_tenant_slug])
    display_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class ConfigurationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PROVISIONING = "provisioning", "Provisioning"
    VERIFYING = "verifying", "Verifying"
    ACTIVE = "active", "Active"
    DRIFT = "drift", "Drift"
    FAILED = "failed", "Failed"
    OFFBOARDING = "offboarding", "Offboarding"
    OFFBOARDED = "offboarded", "Offboarded"


class Work(models.TextChoices):
    """What holds a configuration (tenants.lifecycle): one piece of work at a time."""

    PROVISION = "provision", "provisioning"
    VERIFY = "verify", "a verification check"
    CHECK_DNS = "check_dns", "a DNS check"
    REPAIR = "repair", "a DNS repair"
    RAMP = "ramp", "a DMARC change"
    OFFBOARD = "offboard", "offboarding"
    ROTATE_WEBHOOK = "rotate_webhook", "a webhook secret rotation"
    ROTATE_DKIM = "rotate_dkim", "a DKIM key rotation"


class DmarcState(models.TextChoices):
    """The DMARC ramp (provisioning.dmarc); each state maps to one published record."""

    NONE = "none", "p=none (monitor)"
    QUARANTINE_TEST = "quarantine_test", "p=quarantine, test mode"
    QUARANTINE = "quarantine", "p=quarantine"
    REJECT_TEST = "reject_test", "p=reject, test mode"
    REJECT = "reject", "p=reject"


class DkimRotation(models.TextChoices):
    """Where a DKIM key rotation is (provisioning.dkim_rotation); blank when none is under way."""

    NONE = "", "No rotation"
    REQUESTED = "requested", "New key asked for"
    PUBLISHED = "published", "New key published beside the current one"
    REMOVING = "removing", "New key active; old key waits to be removed"
    # Postmark said something the rotation cannot act on (or took too long): nothing more is written
    # until an email admin resumes it, which starts again from what Postmark reports then.
    STOPPED = "stopped", "Stopped; waits for an email admin"
    RESUMING = "resuming", "Resuming from Postmark's keys"


class ConfigurationManager(models.Manager):
    def load(self, pk: int) -> "EmailConfiguration":
        """One configuration with its tenant and partition, as every workflow reads it."""
        return self.select_related("tenant", "partition").get(pk=pk)


class EmailConfiguration(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="configurations")
    partition = models.ForeignKey(Partition, on_delete=models.PROTECT, related_name="configurations")
    config_slug = models.CharField(max_length=63, validators=[validate_config_slug])
    from_local_part = models.CharField(max_length=64, default="noreply", validators=[validate_from_local_part])
    # Derived by tenants.naming on save; stored so it can be searched, indexed and kept unique.
    sending_domain = models.CharField(max_length=253, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=ConfigurationStatus.choices, default=ConfigurationStatus.DRAFT)
    status_changed_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    dmarc_state = models.CharField(max_length=16, choices=DmarcState.choices, default=DmarcState.NONE)

    # Provider references, filled in by provisioning.
    postmark_server_id = models.BigIntegerField(null=True, blank=True)
    postmark_server_link = models.URLField(blank=True)
    postmark_domain_id = models.BigIntegerField(null=True, blank=True)
    postmark_webhook_id = models.BigIntegerField(null=True, blank=True)
    server_token_encrypted = models.TextField(blank=True, editable=False)
    # Which value of the partition's webhook secret the webhook carries (tenants.secrets.fingerprint).
    webhook_secret_fingerprint = models.CharField(max_length=16, blank=True, editable=False)
    dkim_host = models.CharField(max_length=253, blank=True)
    dkim_value = models.TextField(blank=True)  # public key, not a secret
    return_path_target = models.CharField(max_length=253, blank=True)  # the CNAME target Postmark gave
    # Amazon SES (a partition whose email_provider is "ses"): the records every region asked for
    # (its three DKIM CNAMEs, the MAIL FROM MX and SPF) as [name, type, value, purpose, ttl, region]
    # lists (region "" for the MAIL FROM records every region shares), and
    # each region's last verification answer, {region: {"verification", "dkim", "mail_from",
    # "error", "checked_at"}} (provisioning.ses_workflow).
    provider_records = models.JSONField(default=list, blank=True)
    region_status = models.JSONField(default=dict, blank=True)
    # DKIM key rotation (provisioning.dkim_rotation): the new key published beside the current one
    # until Postmark signs with it, then the old (revoked) key kept until Postmark says it is safe
    # to remove. Public keys, not secrets.
    dkim_rotation = models.CharField(max_length=16, choices=DkimRotation.choices, blank=True, default="")
    dkim_rotation_started_at = models.DateTimeField(null=True, blank=True)
    dkim_pending_host = models.CharField(max_length=253, blank=True)
    dkim_pending_value = models.TextField(blank=True)
    dkim_revoked_host = models.CharField(max_length=253, blank=True)
    dkim_revoked_value = models.TextField(blank=True)
    dkim_rotation_checked_at = models.DateTimeField(null=True, blank=True)  # when Postmark was last asked
    dkim_rotation_error = models.TextField(blank=True)  # why the last step could not be taken ("" if it could)
    # When the key Postmark signs with became active: the page warns once it is older than
    # DKIM_KEY_MAX_AGE_DAYS.
    dkim_key_activated_at = models.DateTimeField(null=True, blank=True)

    # Verification flags as Postmark last reported them.
    dkim_verified = models.BooleanField(default=False)
    return_path_verified = models.BooleanField(default=False)
    verification_checked_at = models.DateTimeField(null=True, blank=True)
    # Verification: the timeout clock starts here; "Check now" on a failed configuration and a retry restart it.
    verification_started_at = models.DateTimeField(null=True, blank=True)
    verification_attempts = models.PositiveIntegerField(default=0)
    # When the DNS records were last compared with what DNS holds (drift detection).
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    # The last test email: the page follows it until the provider reports its delivery or bounce.
    test_email_message_id = models.CharField(max_length=100, blank=True)
    test_email_to = models.CharField(max_length=254, blank=True)
    test_email_sent_at = models.DateTimeField(null=True, blank=True)
    # Who asked for the offboarding (shown on the offboarded page; the audit log will say more).
    offboarded_by = models.CharField(max_length=150, blank=True)
    # DMARC ramp: when the current state was entered (dwell time counts from here).
    dmarc_changed_at = models.DateTimeField(default=timezone.now)

    # The lifecycle (tenants.lifecycle): when the current state's automatic work (provisioning, the
    # next verification or DNS check, offboarding) is due, and who holds the row while working.
    due_at = models.DateTimeField(null=True, blank=True, default=timezone.now)  # a new draft is due at once
    holder = models.UUIDField(null=True, blank=True, editable=False)
    held_for = models.CharField(max_length=16, choices=Work.choices, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConfigurationManager()

    class Meta:
        ordering = ["sending_domain"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "partition", "config_slug"], name="configuration_unique_slug"),
            models.CheckConstraint(
                condition=Q(status__in=ConfigurationStatus.values), name="configuration_status_valid"
            ),
            models.CheckConstraint(condition=Q(dmarc_state__in=DmarcState.values), name="configuration_dmarc_valid"),
            models.CheckConstraint(
                condition=Q(held_for__in=[*Work.values, ""]), name="configuration_held_for_valid"
            ),
            models.CheckConstraint(
                condition=Q(dkim_rotation__in=DkimRotation.values), name="configuration_dkim_rotation_valid"
            ),
        ]
        indexes = [
            # The counts of the summary and overview, and the Needs attention conditions, answered from the
            # index alone on PostgreSQL (an index-only scan instead of reading 40,000 wide rows).
            models.Index(fields=["partition", "status", "dmarc_state"], name="configuration_state",
                         include=["due_at", "holder", "held_until", "verification_started_at", "dkim_rotation",
                                  "status_changed_at", "dkim_rotation_checked_at"]),
            # A partition's overview pages by keyset in domain order (dashboard.queries.configuration_page):
            # each page is one range of this index, however deep.
            models.Index(fields=["partition", "sending_domain"], name="configuration_part_domain"),
            models.Index(fields=["partition", "dmarc_state"], name="configuration_part_dmarc"),
            models.Index(fields=["status", "due_at"], name="configuration_status_due"),
            # "Waiting longest on their DMARC ramp" (dashboard.queries.dmarc_waiting_longest): the active
            # configurations not yet at reject, oldest step first; its first rows, whatever the partition's size.
            models.Index(fields=["partition", "dmarc_changed_at", "id"], name="configuration_ramp_waiting",
                         condition=Q(status="active") & ~Q(dmarc_state="reject")),
            # The event webhook finds the configuration by the server the provider names.
            models.Index(fields=["partition", "postmark_server_id"], name="configuration_part_server"),
        ]

    def __str__(self):
        return self.sending_domain

    def get_absolute_url(self):
        return reverse("dashboard:configuration", args=[self.pk])

    def save(self, *args, **kwargs):
        self.sending_domain = self.identity().domain
        super().save(*args, **kwargs)

    def identity(self) -> naming.SendingIdentity:
        return naming.identity(
            config_slug=self.config_slug,
            tenant_slug=self.tenant.slug,
            mail_zone=self.partition.mail_zone,
            local_part=self.from_local_part,
        )

    @property
    def from_address(self) -> str:
        return self.identity().from_address

    @property
    def last_checked_at(self):
        """When anything last looked at it from outside: the provider's verification or a DNS read."""
        moments = [m for m in (self.verification_checked_at, self.drift_checked_at) if m is not None]
        return max(moments, default=None)

    @property
    def has_server_token(self) -> bool:
        return bool(self.server_token_encrypted)

    @property
    def dkim_known(self) -> bool:
        """The email provider has said which DKIM records to publish (Postmark's key, SES's CNAMEs)."""
        return bool(self.dkim_host or self.provider_records)

    @property
    def on_ses(self) -> bool:
        return self.partition.email_provider == EmailProviderName.SES

    def encrypt_server_token(self, token: str) -> str:
        return crypto.encrypt(
            token,
            key_material=self.partition.read_secret(secrets.ENCRYPTION_KEY),
            secret_label=self.partition.secret_label(secrets.ENCRYPTION_KEY),
        )

    def server_token(self) -> str:
        """Decrypt the server token for a provider call; never display or log the result."""
        return crypto.decrypt(
            self.server_token_encrypted,
            key_material=self.partition.read_secret(secrets.ENCRYPTION_KEY),
            secret_label=self.partition.secret_label(secrets.ENCRYPTION_KEY),
        )


class AuditAction(models.TextChoices):
    """What an audit entry records (tenants.audit): a person's action, or an automatic state change."""

    ONBOARD = "onboard", "Onboard"
    RETRY = "retry", "Retry"
    CHECK_NOW = "check_now", "Check now"
    REPAIR = "repair", "Repair DNS"
    RAMP_DMARC = "ramp_dmarc", "Change DMARC"
    SEND_TEST_EMAIL = "send_test_email", "Send test email"
    ROTATE_DKIM = "rotate_dkim", "Rotate DKIM key"
    ROTATE_WEBHOOK_SECRET = "rotate_webhook_secret", "Rotate webhook secret"
    IMPORT_DMARC_REPORT = "import_dmarc_report", "Import DMARC report"
    OFFBOARD = "offboard", "Offboard"
    SYNC_PARTITIONS = "sync_partitions", "Sync partitions"
    BULK_ONBOARD = "bulk_onboard", "Bulk onboarding"
    ROTATE_ENCRYPTION_KEY = "rotate_encryption_key", "Rotate encryption key"
    PRUNE_AUDIT_LOG = "prune_audit_log", "Prune audit log"
    STATE_CHANGE = "state_change", "State change"  # made by the system (a task), not a person


class AuditOutcome(models.TextChoices):
    PENDING = "pending", "In progress"  # written before a provider call; completed once by its writer
    DONE = "done", "Done"
    STARTED = "started", "Started"  # the work was queued; its progress is logged as state changes
    WARNING = "warning", "Done with a warning"
    FAILED = "failed", "Failed"


class AppendOnly(Exception):
    """An audit entry is never changed or deleted (only pruned past the retention setting)."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("audit entries are never changed")

    def delete(self):
        raise AppendOnly("audit entries are never deleted; `manage.py prune_audit_log` removes old ones")


class AuditEntry(models.Model):
    """One entry of the audit log: who did what, when, to which configuration, from what to what,
    why, and how it ended. Written by tenants.audit only; append-only (see AuditQuerySet)."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150)  # a username, "cli:<user>", or "system"
    task = models.CharField(max_length=32, blank=True)  # for "system": the work (Work) that made the change
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="audit_entries")
    partition = models.CharField(max_length=63, blank=True)  # for filtering without a join
    subject = models.CharField(max_length=253, blank=True)  # the sending domain, partition or file acted on
    before = models.CharField(max_length=64, blank=True)
    after = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices, default=AuditOutcome.DONE)
    message = models.TextField(blank=True)  # the sentence the person was shown
    details = models.JSONField(default=dict, blank=True)  # never a secret (tenants.audit checks)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.CheckConstraint(condition=Q(action__in=AuditAction.values), name="audit_action_valid"),
            models.CheckConstraint(condition=Q(outcome__in=AuditOutcome.values), name="audit_outcome_valid"),
        ]
        indexes = [
            # Pages list newest first by (time, id); each filter has its index in that order.
            models.Index(fields=["configuration", "-at", "-id"], name="audit_configuration_at"),
            models.Index(fields=["configuration", "action", "-at", "-id"], name="audit_configuration_action"),
            models.Index(fields=["-at", "-id"], name="audit_at_id"),  # every entry, date filters, pruning
            models.Index(fields=["partition", "-at", "-id"], name="audit_partition_at"),
            models.Index(fields=["action", "-at", "-id"], name="audit_action_at"),
            models.Index(fields=["actor", "-at", "-id"], name="audit_actor_at"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.subject}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("audit entries are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("audit entries are never deleted; `manage.py prune_audit_log` removes old ones")

    @property
    def outcome_label(self) -> str:
        """A pending entry whose writer is long gone (its lease ran out, and the time queued work may
        wait for a worker) is said to be unknown."""
        lease = timedelta(seconds=settings.WORK_LEASE_SECONDS + settings.WORK_QUEUE_SECONDS)
        if self.outcome == AuditOutcome.PENDING and timezone.now() - self.at > lease:
            return "Interrupted: outcome unknown"
        return self.get_outcome_display()

    @property
    def who(self) -> str:
        return f"system ({Work(self.task).label})" if self.actor == "system" and self.task in Work.values \
            else self.actor
