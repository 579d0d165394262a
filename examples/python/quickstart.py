import sys

import graceserve


def hello(request: graceserve.Request) -> str:
    name = request.arg("name", "world")
    return f"hello, {name}\n"


def ready(server: graceserve.Server) -> None:
    print(f"serving on {server.url} (Ctrl-C drains and stops)", flush=True)


if __name__ == "__main__":
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
    sys.exit(graceserve.serve(addr, hello, ready=ready))
