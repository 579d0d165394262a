/*
 * civetweb-server: CivetWeb comparison server for the benchmarks (bench/c/run.sh).
 *   civetweb-server [--addr IPV4:PORT]
 * 200 "OK" (content-type text/plain; charset=utf-8, keep-alive) to every request. CivetWeb
 * serves one connection per worker thread, so it gets 128 workers (> the 64 wrk connections).
 * SIGINT/SIGTERM: mg_stop, exit 0.
 */
#include <pthread.h>

#include "peer-common.h"
#include <civetweb.h>

static int answer(struct mg_connection *conn, void *cbdata) {
    (void)cbdata;
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: 2\r\n\r\nOK");
    return 200;
}

int main(int argc, char **argv) {
    struct sockaddr_in sa;
    peer_parse(argc, argv, "civetweb-server", &sa);
    sigset_t sigs = peer_block_signals();
    char listen[64];
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    snprintf(listen, sizeof listen, "%s:%u", host, ntohs(sa.sin_port));
    const char *options[] = {"listening_ports", listen, "num_threads", "128",
                             "enable_keep_alive", "yes", "keep_alive_timeout_ms", "60000", NULL};
    mg_init_library(0);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (!ctx) {
        fprintf(stderr, "civetweb-server: cannot listen on %s\n", listen);
        return 1;
    }
    mg_set_request_handler(ctx, "/", answer, NULL);
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(ctx, 4, ports);
    if (n < 1) {
        fprintf(stderr, "civetweb-server: no listening port\n");
        mg_stop(ctx);
        return 1;
    }
    peer_ready(&sa, (unsigned)ports[0].port);
    peer_wait_signal(&sigs);
    mg_stop(ctx);
    mg_exit_library();
    return 0;
}
