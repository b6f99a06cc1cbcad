from django.core.exceptions import PermissionDenied


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
