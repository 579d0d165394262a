/*
 * server-c: the graceserve C example host (DESIGN.md §5 host contract).
 *
 *   server-c [--addr HOST:PORT] [--shutdown-timeout-ms N]
 *
 *   GET  /            -> 200 "OK"
 *   GET  /sleep?ms=N  -> 200 "slept N" after N ms
 *   POST /echo        -> 200, body = request body
 *   anything else     -> 404
 *
 * Prints "listening on HOST:PORT" once bound. SIGINT/SIGTERM drain gracefully; the exit
 * status is the outcome: 0 graceful, 1 bind failure or forced drain.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graceserve.h"

static const struct server_header TEXT_PLAIN[] = {
    {(const uint8_t *)"content-type", 12, (const uint8_t *)"text/plain; charset=utf-8", 25},
};

static void reply(struct server_request *req, uint16_t status, const char *body, size_t len) {
    int rc = server_respond(req, status, TEXT_PLAIN, 1, (const uint8_t *)body, len);
    if (rc != SERVER_OK && rc != SERVER_ERR_CLOSED)
        fprintf(stderr, "server-c: respond: %s\n", server_last_error());
    server_request_free(req);
}

/* Parses the value of "ms" in a query string; returns -1 when absent or invalid. */
static long query_ms(const char *query) {
    for (const char *p = query; p && *p;) {
        if (strncmp(p, "ms=", 3) == 0) {
            char *end = NULL;
            errno = 0;
            long v = strtol(p + 3, &end, 10);
            if (errno != 0 || end == p + 3 || (*end != '\0' && *end != '&') || v < 0 || v > 3600000)
                return -1;
            return v;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return -1;
}

static void handle(void *userdata, struct server_request *req) {
    (void)userdata;
    const char *method = server_request_method(req);
    const char *path = server_request_path(req);

    if (strcmp(path, "/") == 0 && strcmp(method, "GET") == 0) {
        reply(req, 200, "OK", 2);
    } else if (strcmp(path, "/sleep") == 0 && strcmp(method, "GET") == 0) {
        long ms = query_ms(server_request_query(req));
        if (ms < 0) {
            reply(req, 400, "bad ms\n", 7);
            return;
        }
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        char body[64];
        int n = snprintf(body, sizeof body, "slept %ld", ms);
        reply(req, 200, body, (size_t)n);
    } else if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0) {
        const uint8_t *body = NULL;
        size_t len = 0;
        server_request_body(req, &body, &len);
        int rc = server_respond(req, 200, NULL, 0, body, len);
        if (rc != SERVER_OK && rc != SERVER_ERR_CLOSED)
            fprintf(stderr, "server-c: respond: %s\n", server_last_error());
        server_request_free(req);
    } else {
        reply(req, 404, "not found\n", 10);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: server-c [--addr HOST:PORT] [--shutdown-timeout-ms N]\n");
}

int main(int argc, char **argv) {
    struct server_options opts;
    server_options_init(&opts, SERVER_OPTIONS_VERSION);
    opts.addr = "127.0.0.1:8080";
    opts.handler = handle;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--addr") == 0 || strcmp(a, "--shutdown-timeout-ms") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "server-c: %s needs a value\n", a);
                usage();
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(a, "--addr=", 7) == 0) {
            a = "--addr";
            val = argv[i] + 7;
        } else if (strncmp(a, "--shutdown-timeout-ms=", 22) == 0) {
            a = "--shutdown-timeout-ms";
            val = argv[i] + 22;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "server-c: unknown argument %s\n", a);
            usage();
            return 2;
        }
        if (strcmp(a, "--addr") == 0) {
            opts.addr = val;
        } else {
            char *end = NULL;
            errno = 0;
            unsigned long ms = strtoul(val, &end, 10);
            if (errno != 0 || *val == '\0' || *end != '\0' || *val == '-' || ms > UINT32_MAX - 1) {
                fprintf(stderr, "server-c: invalid --shutdown-timeout-ms %s\n", val);
                return 2;
            }
            opts.signal_drain_timeout_ms = (uint32_t)ms;
        }
    }

    if (server_start(&opts) != SERVER_OK) {
        fprintf(stderr, "server-c: %s\n", server_last_error());
        return server_wait(); /* 1: the start failed */
    }
    char addr[64];
    if (server_local_addr(addr, sizeof addr, NULL) == SERVER_OK) {
        printf("listening on %s\n", addr);
        fflush(stdout);
    }
    int status = server_wait();
    if (status != 0)
        fprintf(stderr, "server-c: %s\n", server_last_error());
    return status;
}
