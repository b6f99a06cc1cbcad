import os

from celery import Celery

# The same default as wsgi.py and asgi.py: a worker or beat started the usual way runs the
# production settings (which refuse to start without their secrets), never local mode by accident.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.production")

app = Celery("ardamail_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
