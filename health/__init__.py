"""Platform health: whether each partition's secrets, Postmark account and DNS, and the platform's
worker, beat, queue and public URL, are fit to onboard into (docs/health.md).

`services.platform_check()` runs every check and returns `results.Check` values; the `doctor`
command and the `/health/` page both call it. Outside systems are reached only through the
provider interfaces (provisioning.providers, integrations.dns, integrations.email).
"""
