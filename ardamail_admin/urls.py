from django.contrib import admin
from django.urls import include, path

from provisioning import views as provisioning_views
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("partitions/", tenant_views.partition_list, name="partition_list"),
    path("partitions/<slug:name>/", tenant_views.partition_detail, name="partition_detail"),
    path("configurations/", tenant_views.configuration_list, name="configuration_list"),
    path("onboard/", tenant_views.onboard, name="onboard"),
    path("configurations/<int:pk>/", provisioning_views.configuration_detail, name="configuration_detail"),
    path("configurations/<int:pk>/live/", provisioning_views.configuration_live, name="configuration_live"),
    path("configurations/<int:pk>/records.<str:fmt>", provisioning_views.configuration_records, name="configuration_records"),
    path("configurations/<int:pk>/retry/", provisioning_views.configuration_retry_view, name="configuration_retry"),
    path("configurations/<int:pk>/check/", provisioning_views.configuration_check_now_view, name="configuration_check_now"),
    path("configurations/<int:pk>/repair/", provisioning_views.configuration_repair_view, name="configuration_repair"),
    path("configurations/<int:pk>/dmarc/", provisioning_views.configuration_ramp_view, name="configuration_ramp"),
    path("configurations/<int:pk>/test-email/", provisioning_views.configuration_test_email_view,
         name="configuration_test_email"),
    path("configurations/<int:pk>/offboard/", provisioning_views.configuration_offboard_view, name="configuration_offboard"),
]
