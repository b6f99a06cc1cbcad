"""Local mode: SQLite, filesystem broker, simulated providers (see `make run`)."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRETS_DIR = env.path("SECRETS_DIR", default=VAR_DIR / "secrets")
