from django.urls import path

from . import views

app_name = "webhooks"

# Every provider a server declares (mcp_core.webhooks); an undeclared one is a 404.
urlpatterns = [
    path("<slug:provider>", views.receive_webhook, name="receive"),
]
