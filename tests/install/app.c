/* A C program outside the repository, built by tests/install/run.sh against the INSTALLED
 * graceserve with `cc app.c $(pkg-config --cflags --libs graceserve)` (and --static).
 * GET / answers "hello from C"; SIGTERM drains (the library's signal handling) and the exit
 * status is server_wait()'s. Usage: app [HOST:PORT], default 127.0.0.1:0. */
#include <stdio.h>
#include <string.h>

#include <graceserve.h>

static void handle(void *userdata, server_request *req) {
    (void)userdata;
    if (strcmp(server_request_path(req), "/") == 0)
        server_respond(req, 200, NULL, 0, (const uint8_t *)"hello from C", 12);
    else
        server_respond(req, 404, NULL, 0, NULL, 0);
    server_request_free(req);
}

int main(int argc, char **argv) {
    server_options opts;
    server_options_init(&opts, SERVER_OPTIONS_VERSION);
    opts.addr = argc > 1 ? argv[1] : "127.0.0.1:0";
    opts.handler = handle;
    if (server_start(&opts) != SERVER_OK) {
        fprintf(stderr, "app: %s\n", server_last_error());
        return server_wait();
    }
    printf("listening on 127.0.0.1:%u\n", server_local_port());
    fflush(stdout);
    return server_wait();
}
