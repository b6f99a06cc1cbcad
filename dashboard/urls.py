from django.urls import path, re_path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("attention/", views.attention, name="attention"),
    path("health/", views.health, name="health"),
    path("partitions/", views.partition_list, name="partitions"),
    path("partitions/<slug:name>/", views.partition_detail, name="partition"),
    path("configurations/", views.configuration_list, name="configurations"),
    path("dmarc-reports/", views.reports, name="reports"),
    path("audit/", views.audit_log, name="audit"),
    path("onboard/", views.onboard, name="onboard"),
    path("onboard/bulk/", views.bulk_onboard, name="bulk_onboard"),
    path("onboard/bulk/<int:pk>/", views.bulk_batch, name="bulk_batch"),
    path("onboard/bulk/<int:pk>/live/", views.bulk_batch_live, name="bulk_batch_live"),
    path("configurations/<int:pk>/", views.configuration_detail, name="configuration"),
    path("configurations/<int:pk>/live/", views.configuration_live, name="configuration_live"),
    path("configurations/<int:pk>/export.json", views.configuration_export, name="configuration_export"),
    re_path(r"^configurations/(?P<pk>[0-9]+)/records\.(?P<fmt>csv|txt)$", views.configuration_records,
            name="configuration_records"),
    path("configurations/<int:pk>/retry/", views.configuration_retry_view, name="retry"),
    path("configurations/<int:pk>/check/", views.configuration_check_now_view, name="check_now"),
    path("configurations/<int:pk>/repair/", views.configuration_repair_view, name="repair"),
    path("configurations/<int:pk>/dmarc/", views.configuration_ramp_view, name="ramp_dmarc"),
    path("configurations/<int:pk>/test-email/", views.configuration_test_email_view, name="send_test_email"),
    path("configurations/<int:pk>/rotate-dkim/", views.configuration_rotate_dkim_view, name="rotate_dkim"),
    path("configurations/<int:pk>/offboard/", views.configuration_offboard_view, name="offboard"),
    path("configurations/<int:pk>/onboard-again/", views.configuration_onboard_again_view, name="onboard_again"),
]
