from django.db import models
from django.db.models import Q

from tenants.models import EmailConfiguration, Partition

from .records import RecordStatus


class StepName(models.TextChoices):
    SERVER = "server", "Postmark server"
    DOMAIN = "domain", "Postmark sending domain"
    DNS = "dns", "DNS records"
    WEBHOOK = "webhook", "Webhook"
    CONFIG_SET = "config_set", "SES configuration set"
    IDENTITY = "identity", "SES identities"
    RELAY = "relay", "Postfix relay"  # after verification (provisioning/after_verification.py)


STEP_ORDER = [StepName.SERVER, StepName.DOMAIN, StepName.DNS, StepName.WEBHOOK]
# SES: the configuration set first (an identity is created with it as its default), then the
# identity with its MAIL FROM domain in every region, then the records they asked for.
SES_STEP_ORDER = [StepName.CONFIG_SET, StepName.IDENTITY, StepName.DNS]


def step_order(partition: Partition) -> list[str]:
    """The provisioning steps of a configuration in this partition, in order."""
    return SES_STEP_ORDER if partition.email_provider == "ses" else STEP_ORDER


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ProvisioningStep(models.Model):
    """One step of a configuration's provisioning; what the timeline shows without reading logs."""

    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=16, choices=StepName.choices)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["configuration", "position"]
        constraints = [
            models.UniqueConstraint(fields=["configuration", "name"], name="step_unique_per_configuration"),
            models.CheckConstraint(condition=Q(status__in=StepStatus.values), name="step_status_valid"),
            models.CheckConstraint(condition=Q(name__in=StepName.values), name="step_name_valid"),
        ]

    def __str__(self):
        return f"{self.configuration_id}:{self.name}={self.status}"


class VerificationCheck(models.Model):
    """One verification check: when it ran, what Postmark's flags said, and why it ran."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Check now"
        PROVISIONING = "provisioning", "After provisioning"

    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="verification_checks")
    ran_at = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    dkim_verified = models.BooleanField(null=True)
    return_path_verified = models.BooleanField(null=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-ran_at"]
        indexes = [models.Index(fields=["configuration", "-ran_at"], name="check_config_ran")]

    def __str__(self):
        return f"{self.configuration_id}@{self.ran_at:%Y-%m-%d %H:%M}"


class RecordCheck(models.Model):
    """The last comparison of one desired record with what DNS holds (drift detection, per record)."""

    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="record_checks")
    name = models.CharField(max_length=253)
    type = models.CharField(max_length=8)
    purpose = models.CharField(max_length=16)
    expected = models.TextField()
    found = models.TextField(blank=True)  # values found, one per line; empty when missing
    status = models.CharField(max_length=16, choices=RecordStatus.choices, default=RecordStatus.UNKNOWN)
    source = models.CharField(max_length=32, blank=True)  # "route53" or "dns:<nameserver>"
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["configuration", "purpose"]
        constraints = [
            models.UniqueConstraint(fields=["configuration", "name", "type"], name="record_check_unique"),
            models.CheckConstraint(condition=Q(status__in=RecordStatus.values), name="record_check_status_valid"),
        ]

    def __str__(self):
        return f"{self.type} {self.name}: {self.status}"


class BulkOnboarding(models.Model):
    """One CSV of configurations onboarded together (provisioning.bulk); its page follows them all."""

    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    filename = models.CharField(max_length=255, blank=True)
    rows = models.PositiveIntegerField()  # configurations started
    invalid_rows = models.PositiveIntegerField(default=0)  # rows left out (started with the valid rows only)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"bulk {self.pk}: {self.rows} rows"


class BulkOnboardingRow(models.Model):
    batch = models.ForeignKey(BulkOnboarding, on_delete=models.CASCADE, related_name="members")
    line = models.PositiveIntegerField()
    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["batch", "line"]
        indexes = [models.Index(fields=["batch", "line"], name="bulk_row_batch_line")]


class DriftSweep(models.Model):
    """A partition's scheduled DNS check (provisioning.drift.sweep): when it last ran, what it found,
    and when the next is due. A sweep reads the partition's zone once for all its configurations."""

    partition = models.OneToOneField(Partition, on_delete=models.CASCADE, primary_key=True, related_name="+")
    next_at = models.DateTimeField(null=True, blank=True)  # empty: due now
    running_until = models.DateTimeField(null=True, blank=True)  # a sweep under way holds it until then
    started_at = models.DateTimeField(null=True, blank=True)  # of the last sweep that finished or failed
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    drifted = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)  # busy, or changed between the reads
    error = models.TextField(blank=True)  # why the last sweep stopped; empty when it finished

    def __str__(self):
        return f"DNS sweep of partition {self.partition_id}"
