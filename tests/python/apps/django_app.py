"""A small Django project in one file, served both ways: ``django_app:wsgi`` and
``django_app:asgi`` (tests/python/test_django.py)."""

from __future__ import annotations

from typing import Iterator

from django.conf import settings

settings.configure(
    DEBUG=False,
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="graceserve-tests",
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse(
        {
            "name": name,
            "q": request.GET.getlist("q"),
            "method": request.method,
            "body": len(request.body),
            "script": request.META.get("SCRIPT_NAME", ""),
        }
    )


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        for i in range(3):
            yield f"part {i}\n".encode()

    return StreamingHttpResponse(gen(), content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


urlpatterns = [path("hello/<str:name>", hello), path("stream", stream), path("boom", boom)]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
