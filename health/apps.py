from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    verbose_name = "Platform health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the Celery signals a worker and beat act on (health/worker.py).
        from . import worker  # noqa: F401
