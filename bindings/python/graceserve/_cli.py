"""``python -m graceserve MODULE:APP``: serve a WSGI or ASGI application from the shell, with the
lifecycle every graceserve host has (docs/architecture.md §5 The host contract).

Prints exactly one ``listening on HOST:PORT`` line on stdout once bound (and, for ASGI, once the
lifespan startup completed). SIGINT/SIGTERM drain (a second one forces the stop); the exit
status is the outcome: 0 graceful, 1 failure (bind, lifespan, an application that cannot be
loaded) or forced drain, 2 a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
from typing import Any, Dict, List, NoReturn, Optional

PROG = "python -m graceserve"
_UINT = re.compile(r"\+?[0-9]+")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{PROG}: {message}\n")
        raise SystemExit(2)


def _uint(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        if not _UINT.fullmatch(text.strip()) or not lo <= int(text) <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, not {text!r}")
        return int(text)

    return parse


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Serve a WSGI (Flask, Django, ...) or ASGI (Starlette, FastAPI, ...) application "
        "with graceserve: SIGINT/SIGTERM drain in-flight requests, then the process exits 0 "
        "(1 if the drain deadline cut some).",
    )
    p.add_argument("app", metavar="MODULE:APP", help="the application, e.g. myapp:app (default attribute: app, then application)")
    p.add_argument("--interface", choices=("auto", "wsgi", "asgi"), default="auto",
                   help="auto (default): asgi for an async callable, wsgi otherwise")
    p.add_argument("--addr", default="127.0.0.1:8080", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8080)")
    p.add_argument("--shutdown-timeout-ms", type=_uint(0, 0xFFFFFFFE), default=5000, metavar="N",
                   help="drain deadline after SIGINT/SIGTERM, ms (default 5000)")
    p.add_argument("--drain-delay-ms", type=_uint(0, 0xFFFFFFFE), default=0, metavar="N",
                   help="pre-drain delay after SIGINT/SIGTERM, ms (default 0): keep accepting and "
                   "serving this long, every answer closing its connection and the readiness path "
                   "answering 503, so a load balancer stops routing here before the port closes")
    p.add_argument("--readiness-path", default=None, metavar="PATH",
                   help="answered by the server itself: 200 ready, 503 draining once a drain is requested "
                   "(e.g. /readyz; default off)")
    p.add_argument("--liveness-path", default=None, metavar="PATH",
                   help="answered by the server itself: 200 alive until it stops (e.g. /livez; default off)")
    p.add_argument("--handler-threads", type=_uint(1, 65536), default=None, metavar="N",
                   help="WSGI only: threads running the application at once (default "
                   "min(32, CPUs + 4)); an ASGI application runs on its event loop")
    p.add_argument("--max-body-bytes", type=_uint(1, 2**63 - 1), default=None, metavar="N",
                   help="largest request body, bytes (default 8 MiB; larger gets 413)")
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                   help="ASGI lifespan protocol (default auto: used when the application supports it)")
    p.add_argument("--root-path", default="", metavar="PATH",
                   help="the path prefix the application is mounted at (ASGI root_path, WSGI SCRIPT_NAME)")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="ASGI event loop (default asyncio)")
    return p


def _server_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The command line's :class:`graceserve.Server` options."""
    opts: Dict[str, Any] = {
        "shutdown_timeout": args.shutdown_timeout_ms / 1000,
        "drain_delay": args.drain_delay_ms / 1000,
        "readiness_path": args.readiness_path,
        "liveness_path": args.liveness_path,
    }
    if args.handler_threads is not None:
        opts["handler_threads"] = args.handler_threads
    if args.max_body_bytes is not None:
        opts["max_body_bytes"] = args.max_body_bytes
    return opts


def _fail(message: str) -> int:
    sys.stderr.write(f"graceserve: {message}\n")
    sys.stderr.flush()
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.root_path and (not args.root_path.startswith("/") or args.root_path.endswith("/")):
        parser().error(f"--root-path must start with '/' and not end with one, not {args.root_path!r}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)

    # As gunicorn and uvicorn do: the application's module is looked up from the current
    # directory first.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)

    import graceserve
    from graceserve._web import AppLoadError, detect_interface, load_app

    try:
        app = load_app(args.app)
    except ValueError as e:
        parser().error(str(e))
    except AppLoadError as e:
        return _fail(str(e))
    except Exception as e:
        traceback.print_exc()
        return _fail(f"cannot import {args.app}: {type(e).__name__}: {e}")
    try:
        interface = detect_interface(app) if args.interface == "auto" else args.interface
    except TypeError as e:
        return _fail(f"{args.app}: {e}")
    if not callable(app):
        return _fail(f"{args.app} is not callable (a {type(app).__name__})")

    server: List[graceserve.Server] = []

    def ready(s: graceserve.Server) -> None:
        server.append(s)
        print(f"listening on {s.addr}", flush=True)

    if interface == "asgi" and args.handler_threads is not None:
        parser().error("--handler-threads applies to WSGI applications; an ASGI application runs on its event loop")
    opts = _server_options(args)
    try:
        if interface == "wsgi":
            from graceserve import wsgi

            status = wsgi.serve(app, args.addr, ready=ready, script_name=args.root_path, **opts)
        else:
            from graceserve import asgi

            try:
                status = asgi.serve(
                    app, args.addr, ready=ready, lifespan=args.lifespan, root_path=args.root_path, loop=args.loop, **opts
                )
            except asgi.LifespanError as e:
                return _fail(f"lifespan startup failed: {e}")
            except KeyboardInterrupt as e:
                return _fail(f"stopped: {e}")
    except graceserve.StartError as e:
        return _fail(e.message)
    if status != 0 and server and server[0].stop_message:
        _fail(server[0].stop_message)
    return status
