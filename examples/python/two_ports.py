import sys
from typing import Sequence

import graceserve


def hello(request: graceserve.Request) -> str:
    return f"hello, {request.arg('name', 'world')}\n"


def admin_for(public: graceserve.Server) -> graceserve.Handler:
    def admin(request: graceserve.Request) -> graceserve.HandlerResult:
        if request.path == "/stats":
            s = public.stats()
            return f"requests={s.requests_total} active={s.requests_active}\n"
        if request.path == "/drain" and request.method == "POST":
            status = public.shutdown()  # the public port drains; this one keeps serving
            return f"public drained, status {status}\n"
        return 404, "not found\n"

    return admin


def ready(servers: Sequence[graceserve.Server]) -> None:
    for s in servers:
        print(f"serving on {s.url}", flush=True)


if __name__ == "__main__":
    public = graceserve.Server(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080", hello)
    admin = graceserve.Server(sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:9090", admin_for(public))
    sys.exit(graceserve.serve_all(public, admin, ready=ready))  # one Ctrl-C drains both
