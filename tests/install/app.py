"""A Python program outside the repository, run by tests/install/run.sh with a venv's python
after `pip install` (or installing the wheel): the package and its bundled library only.
GET / answers "hello from Python"; SIGTERM drains; exit 0 after a graceful stop.
Usage: app.py [HOST:PORT], default 127.0.0.1:0."""

import sys

import graceserve


def hello(request: graceserve.Request) -> "tuple[int, str] | str":
    if request.path != "/":
        return 404, "not found"
    return "hello from Python"


def ready(server: graceserve.Server) -> None:
    print(f"listening on {server.addr}", flush=True)


if __name__ == "__main__":
    sys.exit(graceserve.serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0", hello, ready=ready))
