from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("stripe", views.stripe_webhook, name="stripe"),
    path("calcom", views.calcom_webhook, name="calcom"),
    path("retell", views.retell_webhook, name="retell"),
]
