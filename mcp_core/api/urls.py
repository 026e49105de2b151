from django.urls import path

from . import views
from .operations import OperationView

app_name = "mcp_api"

urlpatterns = [
    path("call", views.CallView.as_view(), name="call"),
    path("services", views.ServicesView.as_view(), name="services"),
    path("health", views.HealthView.as_view(), name="health"),
    # One URL per operation (the same pipeline as /call); two segments never clash with the above.
    path("<str:service>/<str:operation>", OperationView.as_view(), name="operation"),
]
