"""Staff roles and partitions, and the actor every action names.

Support may view, onboard, retry and check; email admins may also ramp DMARC to reject and
offboard. Superusers count as email admins. What each role may do in which state is in
tenants.lifecycle.ACTIONS; this module only says who has which role, and where.

Partitions: a user (or a group) given one or more "Can work in partition …" permissions
(`tenants.access_partition_<name>`, one per partition, granted in the admin like any other
permission) sees and acts in those partitions only; a user with none of them, and every
superuser, works in all of them. Every page, download, command and action asks the actor.
"""

import getpass
import os
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError
from django.db.models import Q

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


PARTITION_PERMISSION = "access_partition_"  # + the partition's name


def ensure_partition_permissions(names) -> None:
    """One "Can work in partition …" permission per partition (sync_partitions calls this)."""
    from .models import Partition

    content_type = ContentType.objects.get_for_model(Partition)
    for name in names:
        Permission.objects.get_or_create(codename=PARTITION_PERMISSION + name, content_type=content_type,
                                         defaults={"name": f"Can work in partition {name}"})


def partitions_of(user) -> frozenset[str] | None:
    """The partitions `user` is limited to, or None for all of them. One query, cached on the user."""
    if not hasattr(user, "_ardamail_partitions"):
        limited = None
        if user.is_active and not user.is_superuser:
            codes = Permission.objects.filter(
                Q(user=user) | Q(group__user=user), codename__startswith=PARTITION_PERMISSION,
                content_type__app_label="tenants").values_list("codename", flat=True).distinct()
            limited = frozenset(code.removeprefix(PARTITION_PERMISSION) for code in codes) or None
        user._ardamail_partitions = limited
    return user._ardamail_partitions


def is_email_admin(user) -> bool:
    return user.is_active and user.is_staff and (user.is_superuser or EMAIL_ADMIN_GROUP in _groups(user))


def is_support(user) -> bool:
    """May view, onboard, retry and check: support staff and email admins."""
    return user.is_active and user.is_staff and (
        user.is_superuser or bool({SUPPORT_GROUP, EMAIL_ADMIN_GROUP} & _groups(user))
    )


class CliUserUnknown(CommandError):
    """ARDAMAIL_CLI_USER names no active user: the command stops before doing anything."""


@dataclass(frozen=True)
class Actor:
    """Who asks for an action: a staff user, the command line, or the system (a scheduled task)."""

    name: str
    roles: frozenset[str]
    partitions: frozenset[str] | None = None  # the partitions it may work in; None: all

    @classmethod
    def of(cls, user, *, name: str = "") -> "Actor":
        roles = {role for role, has in ((SUPPORT, is_support(user)), (EMAIL_ADMIN, is_email_admin(user))) if has}
        username = user.get_username()
        # "system" names background work in the audit log: a person of that name is told apart.
        return cls(name or (f"user:{username}" if username == "system" else username), frozenset(roles),
                   partitions_of(user))

    @classmethod
    def command_line(cls) -> "Actor":
        """Whoever can run manage.py in the deployment holds every role in every partition, unless
        ARDAMAIL_CLI_USER names a staff user to act as: then that user's roles and partitions."""
        who = f"cli:{getpass.getuser()}"
        username = os.environ.get("ARDAMAIL_CLI_USER", "")
        if not username:
            return cls(who, frozenset({SUPPORT, EMAIL_ADMIN}))
        try:
            username.encode("utf-8")
        except UnicodeEncodeError:
            raise CliUserUnknown("ARDAMAIL_CLI_USER is not valid UTF-8 text; name a staff user.") from None
        user = None
        if "\x00" not in username and len(username) <= 150:  # no username holds a NUL or is longer
            user = get_user_model().objects.filter(username=username, is_active=True, is_staff=True).first()
        if user is None:
            raise CliUserUnknown(f"ARDAMAIL_CLI_USER names {username[:150]!r}, who is not an active staff user.")
        actor = cls.of(user, name=f"{who} as {username}")
        if not actor.may(SUPPORT):
            raise CliUserUnknown(f"ARDAMAIL_CLI_USER names {username!r}, who has neither the support nor the "
                                 "email admin role.")
        return actor

    def may(self, role: str) -> bool:
        return role in self.roles

    def works_in(self, partition_name: str) -> bool:
        return self.partitions is None or partition_name in self.partitions

    def visible(self, rows, field: str = "partition__name"):
        """`rows` (a queryset) narrowed to the partitions this actor may see."""
        return rows if self.partitions is None else rows.filter(**{f"{field}__in": self.partitions})

    def partition_refusal(self, partition_name: str) -> str:
        """Why this actor may not work in the partition ("" when it may)."""
        if self.works_in(partition_name):
            return ""
        return f"You may not work in partition {partition_name}; you work in {', '.join(sorted(self.partitions))}."

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
