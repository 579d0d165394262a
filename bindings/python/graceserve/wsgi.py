"""Serve any WSGI (PEP 3333) application — Flask, Django, Bottle, Falcon — with graceserve.

    import graceserve
    from myapp import app                      # a Flask app, a Django WSGIHandler, ...

    raise SystemExit(graceserve.serve_wsgi(app, "127.0.0.1:8080"))

or from the shell: ``python -m graceserve myapp:app``. With a :class:`graceserve.Server`:

    server = graceserve.Server("127.0.0.1:8080", graceserve.wsgi.WSGIHandler(app))

The application runs on the library's handler threads (``handler_threads`` of them at once,
``wsgi.multithread`` is True). Each request arrives fully read (``wsgi.input`` is an in-memory
file of the body, at most ``max_body_bytes``). The response goes out as the application produces
it: a body that is one piece (a list, or a first chunk as long as the ``Content-Length`` the
application declared) is sent at once; anything else (generators, ``write()``,
``wsgi.file_wrapper``) is streamed piece by piece, chunked unless a ``Content-Length`` was
given. The iterable's ``close()`` is always called, also when the client went away.
"""

from __future__ import annotations

import io
import logging
import sys
from types import TracebackType
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
    Union,
)
from urllib.parse import unquote_to_bytes

from ._request import Request, ResponseStream
from ._server import Server
from ._web import host_header_addr, split_hostport

__all__ = ["FileWrapper", "WSGIApp", "WSGIHandler", "handler", "serve"]

log = logging.getLogger("graceserve.wsgi")

ExcInfo = Tuple[Type[BaseException], BaseException, Optional[TracebackType]]
OptExcInfo = Union[ExcInfo, Tuple[None, None, None]]
StartResponse = Callable[..., Callable[[bytes], None]]
#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

_VERSIONS = {b"1.0": "HTTP/1.0", b"1.1": "HTTP/1.1", b"2": "HTTP/2"}
_ERROR_BODY = b"internal server error\n"
_ERROR_HEADERS = [("content-type", "text/plain; charset=utf-8")]
#: Bytes read per piece when streaming a ``wsgi.file_wrapper`` (the application's block size
#: when it asks for more).
FILE_BLOCK = 256 * 1024

# "user-agent" -> "HTTP_USER_AGENT", computed once per header name.
_CGI_NAMES: Dict[bytes, Optional[str]] = {b"content-type": None, b"content-length": None}


def _cgi_name(name: bytes) -> Optional[str]:
    key = _CGI_NAMES.get(name, "")
    if key == "":
        # A name with "_" would alias the "-" spelling in the environ (HTTP_X_A for both x-a
        # and x_a): dropped, as gunicorn and nginx do, so a proxy's header cannot be spoofed.
        key = None if b"_" in name else "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_CGI_NAMES) < 4096:
            _CGI_NAMES[name] = key
    return key


class FileWrapper:
    """``environ["wsgi.file_wrapper"]``: iterates a file-like object in blocks and closes it.
    The server recognizes it and streams the file in large pieces."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _Exchange:
    """One request's response side: ``start_response``, ``write``, and how the body leaves."""

    __slots__ = ("req", "status", "headers", "content_length", "stream", "done", "head")

    def __init__(self, req: Request, head: bool) -> None:
        self.req = req
        self.status = 0
        self.headers: Optional[List[Tuple[str, str]]] = None
        self.content_length: Optional[int] = None
        self.stream: Optional[ResponseStream] = None
        self.done = False  # the complete response was handed over (or the client is gone)
        self.head = head

    @property
    def sent(self) -> bool:
        return self.done or self.stream is not None

    def start_response(
        self,
        status: str,
        headers: List[Tuple[str, str]],
        exc_info: Optional[OptExcInfo] = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None and exc_info[0] is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.headers is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(status) is not str or len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
            raise ValueError(f"the status must be a str like '200 OK', not {status!r}")
        if type(headers) is not list:
            raise TypeError(f"the headers must be a list of (name, value) tuples, not {type(headers).__name__}")
        length: Optional[int] = None
        for item in headers:
            if type(item) is not tuple or len(item) != 2:
                raise TypeError(f"each header must be a (name, value) tuple of str, not {item!r}")
            name, value = item
            if type(name) is not str or type(value) is not str:
                raise TypeError(f"header names and values must be str, not {item!r}")
            if len(name) == 14 and name.lower() == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise ValueError(f"invalid Content-Length {value!r}") from None
        self.status = int(status[:3])
        self.headers = headers
        self.content_length = length
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy imperative ``write()`` PEP 3333 still requires: sends at once."""
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if self.headers is None:
            raise AssertionError("write() called before start_response()")
        if self.done:
            return
        if self.stream is None:
            self.begin_stream()
        if data and not self.send_piece(data):
            raise OSError("the client is gone")

    def begin_stream(self) -> None:
        assert self.headers is not None
        self.stream = self.req.respond_stream(self.status, self.headers)

    def send_piece(self, data: bytes) -> bool:
        """Writes to the stream; False once the client is gone."""
        stream = self.stream
        assert stream is not None
        if stream.write(data):
            return True
        self.done = True
        return False

    def send_full(self, body: bytes) -> None:
        assert self.headers is not None
        headers = self.headers
        cl = self.content_length
        if (
            cl is not None
            and cl != len(body)
            and not self.head
            and self.status not in (204, 304)
            and self.status >= 200
        ):
            log.error(
                "graceserve.wsgi: %s declared Content-Length %d but sent %d bytes; sending the real length",
                self.req,
                cl,
                len(body),
            )
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        self.req.respond(self.status, body, headers)  # ValueError (a bad header): not sent yet
        self.done = True

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.close()
        elif not self.done:
            if self.headers is None:
                raise AssertionError("the application returned without calling start_response()")
            self.send_full(b"")


class WSGIHandler:
    """A :class:`graceserve.Server` handler that runs the WSGI application ``app``.

    script_name
        The ``SCRIPT_NAME`` the application is mounted at (behind a proxy that keeps the prefix);
        a request path starting with it has it moved from ``PATH_INFO`` to ``SCRIPT_NAME``.
    url_scheme
        ``wsgi.url_scheme`` (``"http"``; say ``"https"`` behind a TLS-terminating proxy).
    errors
        ``wsgi.errors`` (default ``sys.stderr``).

    ``SERVER_NAME`` / ``SERVER_PORT`` are the bound address once :attr:`server_addr` is set
    (:func:`serve` and ``python -m graceserve`` set it when the server starts), else the
    request's ``Host``.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        script_name: str = "",
        url_scheme: str = "http",
        errors: Optional[IO[str]] = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"the WSGI application must be callable, not {app!r}")
        if script_name and (not script_name.startswith("/") or script_name.endswith("/")):
            raise ValueError(f"script_name must start with '/' and not end with one, not {script_name!r}")
        self.app = app
        self.script_name = script_name
        self.url_scheme = url_scheme
        self.errors = errors
        #: The bound address, ``(host, port)``.
        self.server_addr: Optional[Tuple[str, int]] = None

    def bind(self, server: Server) -> None:
        """Takes ``SERVER_NAME``/``SERVER_PORT`` from ``server``'s bound address."""
        self.server_addr = split_hostport(server.addr)

    # -- environ ---------------------------------------------------------------------------

    def environ(self, req: Request) -> Dict[str, Any]:
        """The PEP 3333 ``environ`` of ``req`` (the head in one foreign call)."""
        f = req._head_fields()
        raw_path = f[1]
        # Native strings hold the bytes as Latin-1 (PEP 3333), percent-decoding included.
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("latin-1")
        script = self.script_name
        if script and (path == script or path.startswith(script + "/")):
            path = path[len(script) :]
        else:
            script = ""
        body_len = f[5]
        body = req.body if body_len != b"0" else b""
        env: Dict[str, Any] = {
            "REQUEST_METHOD": f[0].decode("latin-1"),
            "SCRIPT_NAME": script,
            "PATH_INFO": path,
            "QUERY_STRING": f[2].decode("latin-1"),
            "SERVER_PROTOCOL": _VERSIONS.get(f[4], "HTTP/1.1"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.url_scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": self.errors if self.errors is not None else sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        host: Optional[str] = None
        has_length = False
        it = iter(f[6:-1])
        for name, value in zip(it, it):
            key = _cgi_name(name)
            v = value.decode("latin-1")
            if key is None:
                if name == b"content-type":
                    env["CONTENT_TYPE"] = v
                elif name == b"content-length":
                    has_length = True
                continue
            if key == "HTTP_HOST":
                host = v
            old = env.get(key)
            if old is None:
                env[key] = v
            else:
                env[key] = old + ("; " if key == "HTTP_COOKIE" else ", ") + v
        if body or has_length:
            env["CONTENT_LENGTH"] = str(len(body))
        server = self.server_addr or host_header_addr(host, 443 if self.url_scheme == "https" else 80)
        env["SERVER_NAME"], env["SERVER_PORT"] = (server[0], str(server[1])) if server else ("localhost", "0")
        peer = split_hostport(f[3].decode("latin-1"))
        if peer is not None:
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = peer[0], str(peer[1])
        else:
            env["REMOTE_ADDR"] = ""
        return env

    # -- the call --------------------------------------------------------------------------

    def __call__(self, req: Request) -> None:
        try:
            env = self.environ(req)
        except Exception:
            log.exception("graceserve.wsgi: cannot build the environ of %s; answered 500", req)
            req.respond(500, _ERROR_BODY, _ERROR_HEADERS)
            return
        x = _Exchange(req, env["REQUEST_METHOD"] == "HEAD")
        result: Optional[Iterable[bytes]] = None
        try:
            result = self.app(env, x.start_response)
            self._send(x, result)
        except Exception as e:
            self._failed(x, e)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("graceserve.wsgi: close() of the response of %s raised", req)
            if x.stream is not None:
                x.stream.close()
            elif not x.done and not req.answered:
                req.respond(500, _ERROR_BODY, _ERROR_HEADERS)

    def _send(self, x: _Exchange, result: Iterable[bytes]) -> None:
        t = type(result)
        if (t is list or t is tuple) and x.stream is None and not x.done:
            parts: Any = result
            if len(parts) == 1 and type(parts[0]) is bytes:
                x.send_full(parts[0])
                return
            for p in parts:
                if not isinstance(p, bytes):
                    raise TypeError(f"the response iterable must yield bytes, not {type(p).__name__}")
            x.send_full(b"".join(parts))
            return
        if t is FileWrapper and isinstance(result, FileWrapper) and result.blksize < FILE_BLOCK:
            result.blksize = FILE_BLOCK
        for chunk in result:
            if type(chunk) is not bytes:
                if not isinstance(chunk, bytes):
                    raise TypeError(f"the response iterable must yield bytes, not {type(chunk).__name__}")
                chunk = bytes(chunk)
            if not chunk:
                continue
            if x.done:  # sent whole already, as long as its Content-Length
                if not x.head:
                    log.warning("graceserve.wsgi: %s yielded more than its Content-Length; dropped", x.req)
                    return
                continue
            if x.stream is None:
                if x.headers is None:
                    raise AssertionError("the response iterable yielded before start_response() was called")
                cl = x.content_length
                if cl is not None and len(chunk) >= cl:
                    x.send_full(chunk[:cl])
                    continue
                x.begin_stream()
            if not x.send_piece(chunk):
                return  # the client is gone: stop iterating (close() still follows)
        x.finish()

    def _failed(self, x: _Exchange, e: Exception) -> None:
        if not x.sent:
            log.exception("graceserve.wsgi: the application raised on %s; answered 500", x.req)
            x.done = True
            x.req.respond(500, _ERROR_BODY, _ERROR_HEADERS)
        elif isinstance(e, OSError) and x.done:
            pass  # write() found the client gone
        else:
            log.exception("graceserve.wsgi: the application raised on %s after the response began", x.req)


def handler(app: WSGIApp, **kw: Any) -> WSGIHandler:
    """``WSGIHandler(app, **kw)``: a handler for :class:`graceserve.Server`."""
    return WSGIHandler(app, **kw)


def serve(
    app: WSGIApp,
    addr: str = "127.0.0.1:8080",
    *,
    ready: Optional[Callable[[Server], None]] = None,
    script_name: str = "",
    url_scheme: str = "http",
    **options: Any,
) -> int:
    """Serves ``app`` on ``addr`` until SIGINT/SIGTERM, drains, and returns the exit status (0
    graceful, 1 failed or forced), for ``sys.exit(graceserve.serve_wsgi(app))``. ``options``
    are :class:`graceserve.Server`'s (``shutdown_timeout``, ``handler_threads``, ...); a
    failed start raises :class:`graceserve.StartError`."""
    h = WSGIHandler(app, script_name=script_name, url_scheme=url_scheme)
    server = Server(addr, h, **options)

    def on_ready(s: Server) -> None:
        h.bind(s)
        if ready is not None:
            ready(s)

    return server.serve(ready=on_ready)

