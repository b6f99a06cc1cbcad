# One image for every process of ardamail-admin; the Kubernetes manifests (deploy/kubernetes) choose
# the command: the web (the default below), `celery -A ardamail_admin worker`, `celery -A
# ardamail_admin beat`, `python manage.py migrate`. Nothing secret is built in: settings come from
# the environment, the partitions' secrets from files External Secrets mounts at /app/secret.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
# Every wheel the runtime needs is on PyPI for this platform: no compiler in the image.
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=ardamail_admin.settings.production \
    STATIC_ROOT=/app/static \
    PARTITIONS_FILE=/app/config/partitions.toml \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN groupadd --system --gid 10001 ardamail \
    && useradd --system --uid 10001 --gid ardamail --home-dir /app --no-create-home --shell /usr/sbin/nologin ardamail
WORKDIR /app
COPY --from=build /venv /venv
COPY . /app
# Static files are collected once, here, with hashed names (WhiteNoise serves them from the web
# process). The production settings insist on their variables; these stand-ins exist only for this
# command and are not kept in the image.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost PUBLIC_BASE_URL=https://build.invalid \
    CELERY_BROKER_URL=memory:// DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app \
    && rm -rf /tmp/collectstatic.sqlite3 /tmp/prometheus
USER 10001:10001
EXPOSE 8000 9808
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
