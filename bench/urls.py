"""Benchmark routes: every project route plus a bare constant view, the floor any request is compared to."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from cryptodesk import urls as project

CONSTANT_BODY = b'{"ok":true}'


def constant(request: HttpRequest) -> HttpResponse:
    """The whole middleware stack and nothing else: no DRF, no auth, no database."""
    return HttpResponse(CONSTANT_BODY, content_type="application/json")


urlpatterns = [path("bench/constant/", constant), *project.urlpatterns]

handler400 = project.handler400
handler403 = project.handler403
handler404 = project.handler404
handler500 = project.handler500
