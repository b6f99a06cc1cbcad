"""What every page's layout needs to know about the signed-in user."""

from tenants.roles import EMAIL_ADMIN, SUPPORT, Actor


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_onboard": Actor.of(user).may(SUPPORT),
        "can_upload_reports": Actor.of(user).may(EMAIL_ADMIN),
        # The admin's index would be empty for someone who may see none of its models.
        "can_use_admin": user.is_active and user.is_staff
        and any(user.has_module_perms(app) for app in ("tenants", "provisioning", "auth")),
    }
