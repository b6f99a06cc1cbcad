from django.urls import path

from . import views

app_name = "events"

urlpatterns = [
    # Before the general pattern below, which would take "postmark-inbound" for a provider's name.
    path("webhooks/postmark-inbound/<slug:partition>/", views.postmark_inbound, name="postmark_inbound"),
    # Amazon SES's events through an SNS subscription: an SNS envelope, not one provider event per body.
    path("webhooks/ses/<slug:partition>/", views.ses_webhook, name="ses_webhook"),
    path("webhooks/<slug:provider>/<slug:partition>/", views.provider_webhook, name="webhook"),
]
