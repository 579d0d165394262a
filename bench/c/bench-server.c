/*
 * bench-server: the graceserve server the C benchmarks drive (not a contract host).
 *
 *   bench-server --mode builtin|pool|inline [--addr HOST:PORT] [--workers N] [--handler-threads N]
 *
 *   builtin  opts.handler = NULL: the library's built-in 200 "OK" handler (no C call at all)
 *   pool     a C handler that answers 200 "OK" at once, run on the handler-thread pool (default)
 *   inline   the same C handler with opts.inline_handler = true (run on the async worker)
 *
 * Every response is 200, body "OK", content-type text/plain; charset=utf-8 — the same bytes as
 * the built-in handler and bench/baseline-hyper. Prints "listening on HOST:PORT" once bound;
 * SIGINT/SIGTERM drain (library signal handling); exit status is server_wait()'s.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graceserve.h"

static const struct server_header TEXT_PLAIN[] = {
    {(const uint8_t *)"content-type", 12, (const uint8_t *)"text/plain; charset=utf-8", 25},
};

static void answer_ok(void *userdata, struct server_request *req) {
    (void)userdata;
    int rc = server_respond(req, 200, TEXT_PLAIN, 1, (const uint8_t *)"OK", 2);
    if (rc != SERVER_OK && rc != SERVER_ERR_CLOSED)
        fprintf(stderr, "bench-server: respond: %s\n", server_last_error());
    server_request_free(req);
}

static int usage(void) {
    fprintf(stderr, "usage: bench-server --mode builtin|pool|inline [--addr HOST:PORT] [--workers N]"
                    " [--handler-threads N]\n");
    return 2;
}

int main(int argc, char **argv) {
    struct server_options opts;
    server_options_init(&opts, SERVER_OPTIONS_VERSION);
    opts.addr = "127.0.0.1:8080";
    const char *mode = NULL;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "bench-server: %s: missing value or unknown argument\n", argv[i]);
            return usage();
        }
        const char *val = argv[i + 1];
        if (strcmp(argv[i], "--addr") == 0) {
            opts.addr = val;
        } else if (strcmp(argv[i], "--mode") == 0) {
            mode = val;
        } else if (strcmp(argv[i], "--workers") == 0 || strcmp(argv[i], "--handler-threads") == 0) {
            char *end = NULL;
            unsigned long n = strtoul(val, &end, 10);
            if (*val == '\0' || *val == '-' || *end != '\0' || n == 0 || n > 4096) {
                fprintf(stderr, "bench-server: invalid %s %s\n", argv[i], val);
                return 2;
            }
            if (strcmp(argv[i], "--workers") == 0)
                opts.worker_threads = (uint32_t)n;
            else
                opts.handler_threads = (uint32_t)n;
        } else {
            fprintf(stderr, "bench-server: unknown argument %s\n", argv[i]);
            return usage();
        }
        i++;
    }
    if (mode == NULL) {
        fprintf(stderr, "bench-server: --mode is required\n");
        return usage();
    }
    if (strcmp(mode, "builtin") == 0) {
        opts.handler = NULL;
    } else if (strcmp(mode, "pool") == 0) {
        opts.handler = answer_ok;
    } else if (strcmp(mode, "inline") == 0) {
        opts.handler = answer_ok;
        opts.inline_handler = true;
    } else {
        fprintf(stderr, "bench-server: unknown --mode %s\n", mode);
        return usage();
    }

    if (server_start(&opts) != SERVER_OK) {
        fprintf(stderr, "bench-server: %s\n", server_last_error());
        return server_wait();
    }
    char addr[64];
    if (server_local_addr(addr, sizeof addr, NULL) == SERVER_OK) {
        printf("listening on %s\n", addr);
        fflush(stdout);
    }
    int status = server_wait();
    if (status != 0)
        fprintf(stderr, "bench-server: %s\n", server_last_error());
    return status;
}
