"""A small Django project (one file), served as WSGI and as ASGI by graceserve."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

import graceserve
import graceserve.asgi
import graceserve.wsgi

from conftest import addr_of, request

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import django_app  # noqa: E402


@pytest.fixture(params=["wsgi", "asgi"])
def django_server(request: pytest.FixtureRequest) -> Iterator[graceserve.Server]:
    if request.param == "wsgi":
        h: Any = graceserve.wsgi.WSGIHandler(django_app.wsgi)
        s = graceserve.Server("127.0.0.1:0", h).start()
        h.bind(s)
        yield s
        s.shutdown(2)
    else:
        with graceserve.asgi.ASGIHandler(django_app.asgi) as h:
            s = graceserve.Server("127.0.0.1:0", h).start()
            h.bind(s)
            yield s
            s.shutdown(2)


def test_django_routes_bodies_streams_and_errors(django_server: graceserve.Server) -> None:
    a = addr_of(django_server)
    status, headers, body = request(a, "GET", "/hello/d%C3%A9j%C3%A0?q=1&q=2")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"name": "déjà", "q": ["1", "2"], "method": "GET", "body": 0, "script": ""}
    status, _, body = request(a, "POST", "/hello/x", body=b"z" * 300_000)
    assert status == 200 and json.loads(body)["body"] == 300_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Django's ASGI handler warns about sync iterators
        status, headers, body = request(a, "GET", "/stream")
    assert (status, body) == (200, b"part 0\npart 1\npart 2\n")
    assert request(a, "GET", "/nope")[0] == 404
    assert request(a, "GET", "/boom")[0] == 500
    assert request(a, "GET", "/hello/again")[0] == 200
