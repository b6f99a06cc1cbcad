"""Staff roles, and the actor every action names.

Support may view, onboard, retry and check; email admins may also ramp DMARC to reject and
offboard. Superusers count as email admins. What each role may do in which state is in
tenants.lifecycle.ACTIONS; this module only says who has which role.
"""

import getpass
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

SUPPORT_GROUP = "support"
EMAIL_ADMIN_GROUP = "email admin"
SUPPORT, EMAIL_ADMIN = "support", "email admin"  # the roles an action may need
ROLE_REFUSALS = {
    SUPPORT: "This needs the support or email admin role.",
    EMAIL_ADMIN: "This needs the email admin role.",
}


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


@dataclass(frozen=True)
class Actor:
    """Who asks for an action: a staff user, the command line, or the system (a scheduled task)."""

    name: str
    roles: frozenset[str]

    @classmethod
    def of(cls, user) -> "Actor":
        roles = {role for role, has in ((SUPPORT, is_support(user)), (EMAIL_ADMIN, is_email_admin(user))) if has}
        name = user.get_username()
        # "system" names background work in the audit log: a person of that name is told apart.
        return cls(f"user:{name}" if name == "system" else name, frozenset(roles))

    @classmethod
    def command_line(cls) -> "Actor":
        # Whoever can run manage.py in the deployment holds every role.
        return cls(f"cli:{getpass.getuser()}", frozenset({SUPPORT, EMAIL_ADMIN}))

    def may(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_email_admin(self) -> bool:
        return EMAIL_ADMIN in self.roles


def role_required(role: str):
    """View decorator for pages (not actions: those are refused by the lifecycle's table)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not Actor.of(request.user).may(role):
                raise PermissionDenied(ROLE_REFUSALS[role])
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
