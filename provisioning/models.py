from django.db import models
from django.db.models import Q

from tenants.models import EmailConfiguration


class StepName(models.TextChoices):
    SERVER = "server", "Postmark server"
    DOMAIN = "domain", "Postmark sending domain"
    DNS = "dns", "DNS records"
    WEBHOOK = "webhook", "Webhook"


STEP_ORDER = [StepName.SERVER, StepName.DOMAIN, StepName.DNS, StepName.WEBHOOK]


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
