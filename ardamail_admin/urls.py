from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Only signing in and out: there is no e-mail for password resets (staff accounts are managed in the admin).
urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("dashboard.urls")),
]

handler403 = "dashboard.views.forbidden"
handler404 = "dashboard.views.not_found"
