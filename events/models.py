"""What the email provider reported about each message: deliveries, bounces and spam complaints.

An event is stored once (its natural key, per partition and type: docs/providers/postmark-events.md)
and kept against its configuration, or unmatched (configuration empty) when the server it names is
not one of ours, so nothing the provider sends is lost. `EventStats` is the per-configuration
roll-up the partition overview sorts by; the configuration page counts from the events themselves.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import EmailConfiguration, Partition


class RecordType(models.TextChoices):
    DELIVERY = "Delivery", "Delivery"
    BOUNCE = "Bounce", "Bounce"
    SPAM_COMPLAINT = "SpamComplaint", "Spam complaint"


class DeliveryEvent(models.Model):
    partition = models.ForeignKey(Partition, on_delete=models.PROTECT, related_name="+")
    configuration = models.ForeignKey(EmailConfiguration, null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="events")
    record_type = models.CharField(max_length=16, choices=RecordType.choices)
    key = models.CharField(max_length=450)  # the natural key within the partition and type
    server_id = models.BigIntegerField(null=True, blank=True)  # as the provider named it
    message_id = models.CharField(max_length=100, blank=True)
    recipient = models.CharField(max_length=320, blank=True)
    occurred_at = models.DateTimeField()  # DeliveredAt / BouncedAt
    received_at = models.DateTimeField(default=timezone.now)
    bounce_type = models.CharField(max_length=40, blank=True)
    undelivered = models.BooleanField(default=False)  # a bounce the bounce rate counts (not an auto-reply, …)
    description = models.TextField(blank=True)
    details = models.TextField(blank=True)  # the receiving server's answer
    message_stream = models.CharField(max_length=100, blank=True)
    tag = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["partition", "record_type", "key"], name="event_unique_key"),
            models.CheckConstraint(condition=Q(record_type__in=RecordType.values), name="event_record_type_valid"),
        ]
        indexes = [
            # The feed (newest first) and the daily counts of one configuration.
            # (id too: the feed's order is -occurred_at, -id, so its page is a range of the index, unsorted.)
            models.Index(fields=["configuration", "-occurred_at", "-id"], name="event_config_time_id"),
            models.Index(fields=["configuration", "record_type", "occurred_at", "id"], name="event_config_type_time_id"),
            # The daily counts of the configuration page (events.stats._daily) read only this index
            # (an index-only scan: 65 ms instead of 430 ms over 100,000 events of one configuration).
            models.Index(fields=["configuration", "occurred_at"], include=["record_type", "undelivered"],
                         name="event_config_day"),
            # The roll-up finds what arrived since it last ran; a test email finds its own events.
            models.Index(fields=["received_at"], name="event_received"),
            models.Index(fields=["message_id"], name="event_message"),
        ]

    def __str__(self):
        return f"{self.record_type} {self.recipient} {self.occurred_at:%Y-%m-%d %H:%M}"


class EventStats(models.Model):
    """A configuration's counts and rates over the last 7 days, as of `computed_at` (the roll-up)."""

    configuration = models.OneToOneField(EmailConfiguration, on_delete=models.CASCADE, related_name="event_stats",
                                         primary_key=True)
    delivered_7d = models.PositiveIntegerField(default=0)
    bounced_7d = models.PositiveIntegerField(default=0)  # bounces of undelivered messages
    complaints_7d = models.PositiveIntegerField(default=0)
    bounce_rate_7d = models.FloatField(null=True, blank=True)  # None: no mail to judge by
    complaint_rate_7d = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["bounce_rate_7d"], name="stats_bounce_rate"),
            models.Index(fields=["complaint_rate_7d"], name="stats_complaint_rate"),
        ]

    def __str__(self):
        return f"{self.configuration_id}: {self.bounce_rate_7d} / {self.complaint_rate_7d}"


class RollupMark(models.Model):
    """Where the roll-up got to: events received before `received_before` are counted."""

    name = models.CharField(max_length=32, unique=True)
    received_before = models.DateTimeField()
    day = models.DateField()  # the UTC day of the last full recount (windows move at midnight)


# --- DMARC aggregate reports (events/dmarc_reports.py) ---------------------------------------------

class ReportSource(models.TextChoices):
    INBOUND = "inbound", "Postmark inbound"
    COMMAND = "command", "import_dmarc_reports"
    UPLOAD = "upload", "Upload"
    LOCAL = "local", "Generated (local mode)"


class DmarcReport(models.Model):
    """One aggregate report as a receiver sent it, stored once per reporter and report id."""

    org_name = models.CharField(max_length=200)  # the reporter
    report_id = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True)
    begin = models.DateTimeField()
    end = models.DateTimeField()
    policy_domain = models.CharField(max_length=253)
    policy = models.CharField(max_length=20, blank=True)  # p= as the receiver saw it
    pct = models.CharField(max_length=5, blank=True)
    rows = models.PositiveIntegerField(default=0)
    messages = models.PositiveBigIntegerField(default=0)
    matched_messages = models.PositiveBigIntegerField(default=0)  # for a configuration of ours
    source = models.CharField(max_length=16, choices=ReportSource.choices)
    filename = models.CharField(max_length=255, blank=True)
    imported_by = models.CharField(max_length=150, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)
    # Counted only when we know who sent it: a person imported it, or the mail that carried it came
    # from the reporter's own domain and passed SPF at Postmark (events/dmarc_reports.py#trust).
    trusted = models.BooleanField(default=True)
    sender = models.CharField(max_length=254, blank=True)  # the From of the mail that carried it
    distrust = models.CharField(max_length=300, blank=True)  # why it is not counted

    class Meta:
        ordering = ["-imported_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["org_name", "policy_domain", "report_id"],
                                               name="dmarc_report_unique")]
        # The reports page lists newest first by keyset on (imported_at, id) (dashboard.queries.report_page).
        indexes = [models.Index(fields=["-imported_at", "-id"], name="dmarc_report_imported_id")]

    def __str__(self):
        return f"{self.org_name} {self.report_id}"


class DmarcReportRow(models.Model):
    """One record of a report: a source IP, how many messages, and what DMARC made of them."""

    report = models.ForeignKey(DmarcReport, on_delete=models.CASCADE, related_name="records")
    configuration = models.ForeignKey(EmailConfiguration, null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="dmarc_rows")
    day = models.DateField()  # the UTC day the report's period begins
    source_ip = models.GenericIPAddressField()
    count = models.PositiveBigIntegerField()
    disposition = models.CharField(max_length=20)
    dkim = models.CharField(max_length=8)  # DMARC-aligned DKIM result
    spf = models.CharField(max_length=8)  # DMARC-aligned SPF result
    aligned_pass = models.BooleanField()
    header_from = models.CharField(max_length=253)
    envelope_from = models.CharField(max_length=253, blank=True)
    counted = models.BooleanField(default=True)  # its report is trusted (DmarcReport.trusted), kept here for speed
    dkim_auth = models.CharField(max_length=500, blank=True)  # "domain=result (selector)", raw results
    spf_auth = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["configuration", "aligned_pass", "day"], name="dmarc_row_config_pass_day"),
            models.Index(fields=["configuration", "day"], name="dmarc_row_config_day"),
        ]


class DmarcDay(models.Model):
    """Per configuration and UTC day: messages reported and how many passed DMARC aligned."""

    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="dmarc_days")
    day = models.DateField()
    messages = models.PositiveBigIntegerField(default=0)
    passed = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["configuration", "day"], name="dmarc_day_unique")]


class DmarcReporterDay(models.Model):
    """Per configuration, UTC day and reporter: messages and reports (the page's reporters list)."""

    configuration = models.ForeignKey(EmailConfiguration, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    org_name = models.CharField(max_length=200)
    messages = models.PositiveBigIntegerField(default=0)
    reports = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["configuration", "day", "org_name"],
                                               name="dmarc_reporter_day_unique")]
