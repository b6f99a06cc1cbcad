from django.contrib import admin
from django.urls import include, path

from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("partitions/", tenant_views.partition_list, name="partition_list"),
    path("partitions/<slug:name>/", tenant_views.partition_detail, name="partition_detail"),
    path("configurations/<int:pk>/", tenant_views.configuration_detail, name="configuration_detail"),
]
