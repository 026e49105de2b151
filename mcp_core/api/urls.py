from django.urls import path

from . import views

app_name = "mcp_api"

urlpatterns = [
    path("call", views.CallView.as_view(), name="call"),
    path("services", views.ServicesView.as_view(), name="services"),
    path("health", views.HealthView.as_view(), name="health"),
]
