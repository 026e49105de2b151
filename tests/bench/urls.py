"""The production URLs plus a bare Django JSON view, the baseline every HTTP bench compares to."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from askpro.urls import urlpatterns as production_urlpatterns


@csrf_exempt
def bare(request):
    return JsonResponse({"success": True, "data": {"ok": True}})


urlpatterns = [path("bench/bare", bare), *production_urlpatterns]
