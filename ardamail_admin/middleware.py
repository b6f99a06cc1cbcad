import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

SIGNED_IN_AT = "ardamail_signed_in_at"
LAST_ACTIVE = "ardamail_last_active"


class StaffRequiredMiddleware:
    """Every page is for staff only; LoginRequiredMiddleware has already sent anonymous users away.

    Views marked with `login_not_required` (login page, provider webhooks) are left alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True):
            return None
        user = request.user
        if user.is_authenticated and not user.is_staff:
            raise PermissionDenied("Staff access only.")
        return None


@receiver(user_logged_in)
def _note_sign_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[SIGNED_IN_AT] = request.session[LAST_ACTIVE] = time.time()


def is_poll(request) -> bool:
    """The page's own background requests (app.js marks them): they are not a person's activity."""
    return request.headers.get("X-Ardamail-Poll") == "1"


class SessionLifetimeMiddleware:
    """A session ends after SESSION_IDLE_MINUTES without a person's request (the pages' background
    polls do not count, so a tab left open does not keep it alive) and SESSION_MAX_HOURS after
    signing in, however busy; then the person signs in again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now, session = time.time(), request.session
            signed_in_at = session.setdefault(SIGNED_IN_AT, now)  # a session from before these rules: starts now
            last_active = session.setdefault(LAST_ACTIVE, now)
            if (now - signed_in_at > settings.SESSION_MAX_HOURS * 3600
                    or now - last_active > settings.SESSION_IDLE_MINUTES * 60):
                logout(request)
                # Back to the page after signing in again, unless it was a form's POST (signing out, say).
                return redirect_to_login(request.get_full_path() if request.method == "GET" else "/")
            if not is_poll(request):
                session[LAST_ACTIVE] = now
        return self.get_response(request)
