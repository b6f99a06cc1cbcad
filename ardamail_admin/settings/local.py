"""Local mode: SQLite, filesystem broker, simulated providers (see `make run`).

`manage.py run_local` serves a moto Route53 on LOCAL_MOTO_PORT and the Postmark simulator on
LOCAL_POSTMARK_PORT; the defaults below point every process (web, worker, commands) at them.
Set POSTMARK_API_URL / AWS_ENDPOINT_URL (and real credentials) to go live instead.
"""

import os

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRETS_DIR = env.path("SECRETS_DIR", default=VAR_DIR / "secrets")

LOCAL_MOTO_PORT = env.int("LOCAL_MOTO_PORT", default=8001)
LOCAL_POSTMARK_PORT = env.int("LOCAL_POSTMARK_PORT", default=8002)
POSTMARK_API_URL = env("POSTMARK_API_URL", default=f"http://127.0.0.1:{LOCAL_POSTMARK_PORT}")
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default=f"http://127.0.0.1:{LOCAL_MOTO_PORT}")
if AWS_ENDPOINT_URL.startswith("http://127.0.0.1"):
    # moto accepts any credentials, but boto3 refuses to sign without some.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

# A DKIM rotation's later steps come on the configuration's checks: look every minute locally, so the
# simulator's "safe to remove the old key" (two minutes after the new key is active) is seen soon.
DKIM_ROTATION_CHECK_MINUTES = env.float("DKIM_ROTATION_CHECK_MINUTES", default=1.0)
