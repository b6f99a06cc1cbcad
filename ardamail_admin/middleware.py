import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

SIGNED_IN_AT = "ardamail_signed_in_at"


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
        request.session[SIGNED_IN_AT] = time.time()


class SessionLifetimeMiddleware:
    """A session lasts at most SESSION_MAX_HOURS from signing in, however busy (the idle limit is
    Django's own SESSION_COOKIE_AGE, renewed on every request); then the person signs in again."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            signed_in_at = request.session.get(SIGNED_IN_AT)
            if signed_in_at is None:  # a session from before this rule: its clock starts now
                request.session[SIGNED_IN_AT] = time.time()
            elif time.time() - signed_in_at > settings.SESSION_MAX_HOURS * 3600:
                logout(request)
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)
