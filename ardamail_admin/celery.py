import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.local")

app = Celery("ardamail_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
