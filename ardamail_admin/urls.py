from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

# Only signing in and out: there is no e-mail for password resets (staff accounts are managed in the admin).
urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("events.urls")),  # the providers' webhooks: no login, no CSRF, their own secret
    # Browsers ask for /favicon.ico on every page, signed in or not. The static URL is looked up when
    # asked for, not at import: in production it comes from collectstatic's manifest, which a worker
    # or the migration job (which load these URLs too, through Django's checks) need not have.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=lazy(static, str)("dashboard/favicon.svg"),
                                                                permanent=True))),
    path("", include("dashboard.urls")),
]

handler400 = "dashboard.views.bad_request"
handler403 = "dashboard.views.forbidden"
handler404 = "dashboard.views.not_found"
