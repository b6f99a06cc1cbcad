"""Staff roles. Support may view, onboard, retry and check; email admins may also ramp DMARC to
reject and offboard. Superusers count as email admins."""

from django.contrib.auth.models import Group

SUPPORT_GROUP = "support"
EMAIL_ADMIN_GROUP = "email admin"


def ensure_role_groups() -> None:
    for name in (SUPPORT_GROUP, EMAIL_ADMIN_GROUP):
        Group.objects.get_or_create(name=name)


def _groups(user) -> set[str]:
    # Cached on the user object so a page asks the database once, however many buttons it draws.
    if not hasattr(user, "_ardamail_groups"):
        user._ardamail_groups = set(user.groups.values_list("name", flat=True))
    return user._ardamail_groups


def is_email_admin(user) -> bool:
    return user.is_active and user.is_staff and (user.is_superuser or EMAIL_ADMIN_GROUP in _groups(user))


def is_support(user) -> bool:
    """May view, onboard, retry and check: support staff and email admins."""
    return user.is_active and user.is_staff and (
        user.is_superuser or bool({SUPPORT_GROUP, EMAIL_ADMIN_GROUP} & _groups(user))
    )


def role_required(check, message: str):
    """View decorator: 403 unless `check(request.user)`; buttons are hidden too, but the server decides."""
    from functools import wraps

    from django.core.exceptions import PermissionDenied

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


support_required = role_required(is_support, "This needs the support or email admin role.")
email_admin_required = role_required(is_email_admin, "This needs the email admin role.")
