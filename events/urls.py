from django.urls import path

from . import views

app_name = "events"

urlpatterns = [
    path("webhooks/<slug:provider>/<slug:partition>/", views.provider_webhook, name="webhook"),
]
