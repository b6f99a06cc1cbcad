from django.db import models


class Heartbeat(models.Model):
    """When a worker last ran the heartbeat beat sends every HEALTH_HEARTBEAT_SECONDS: at that moment
    beat, the broker and a worker all worked (health.platform.worker_check). One row per `key`."""

    key = models.CharField(max_length=32, unique=True)
    seen_at = models.DateTimeField()
    worker = models.CharField(max_length=255, blank=True)  # the Celery hostname that ran it

    def __str__(self):
        return f"{self.key} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
