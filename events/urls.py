from django.urls import path

from . import views

app_name = "events"

urlpatterns = [
    # Before the general pattern below, which would take "postmark-inbound" for a provider's name.
    path("webhooks/postmark-inbound/<slug:partition>/", views.postmark_inbound, name="postmark_inbound"),
    path("webhooks/<slug:provider>/<slug:partition>/", views.provider_webhook, name="webhook"),
]
