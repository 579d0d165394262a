/*
 * server-c: the graceserve C example host (docs/architecture.md §5 The host contract).
 *
 *   server-c [--addr HOST:PORT | systemd | systemd:NAME | fd:N] [--shutdown-timeout-ms N]
 *            [--drain-delay-ms N]
 *
 *   GET  /            -> 200 "OK"
 *   GET  /sleep?ms=N  -> 200 "slept N" after N ms
 *   POST /echo        -> 200, body = request body
 *   GET  /readyz      -> 200 "ready"; 503 "draining" once a drain is requested (the library)
 *   GET  /livez       -> 200 "alive" until the server stops (the library)
 *   anything else     -> 404
 *
 * Prints "listening on HOST:PORT" once bound. SIGINT/SIGTERM drain gracefully (after the
 * pre-drain delay); SIGHUP upgrades in place: a fresh copy of this program with the same flags
 * takes over the listener, and once it reports ready this process drains and exits 0 (if it
 * never does, this process keeps serving and says why). With NOTIFY_SOCKET set the library
 * tells systemd READY=1, STOPPING=1 and WATCHDOG=1. The library's lifecycle events go to
 * stderr, one line each. The exit status is the outcome: 0 graceful, 1 bind failure or forced
 * drain.
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

static void on_event(void *userdata, server_event_kind kind, const char *message) {
    (void)userdata;
    (void)kind;
    fprintf(stderr, "server-c: %s\n", message);
}

static void usage(void) {
    fprintf(stderr, "usage: server-c [--addr HOST:PORT|systemd|systemd:NAME|fd:N] [--shutdown-timeout-ms N] [--drain-delay-ms N]\n");
}

/* Parses a millisecond flag value: 0..UINT32_MAX-1; -1 when invalid. */
static long long parse_ms(const char *val) {
    char *end = NULL;
    errno = 0;
    unsigned long long ms = strtoull(val, &end, 10);
    if (errno != 0 || *val == '\0' || *end != '\0' || *val == '-' || ms > UINT32_MAX - 1) return -1;
    return (long long)ms;
}

int main(int argc, char **argv) {
    struct server_options opts;
    server_options_init(&opts, SERVER_OPTIONS_VERSION);
    opts.addr = "127.0.0.1:8080";
    opts.handler = handle;
    opts.readiness_path = "/readyz";
    opts.liveness_path = "/livez";
    opts.on_event = on_event;
    opts.upgrade_on_sighup = true; /* SIGHUP: hand the listener to a fresh copy of this program */

    static const char *const ms_flags[] = {"--shutdown-timeout-ms", "--drain-delay-ms"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const char *flag = NULL;
        size_t len = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        const char *const flags[] = {"--addr", ms_flags[0], ms_flags[1]};
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            len = strlen(flags[f]);
            if (strcmp(a, flags[f]) == 0) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "server-c: %s needs a value\n", a);
                    usage();
                    return 2;
                }
                flag = flags[f];
                val = argv[++i];
                break;
            }
            if (strncmp(a, flags[f], len) == 0 && a[len] == '=') {
                flag = flags[f];
                val = a + len + 1;
                break;
            }
        }
        if (flag == NULL) {
            fprintf(stderr, "server-c: unknown argument %s\n", a);
            usage();
            return 2;
        }
        if (strcmp(flag, "--addr") == 0) {
            opts.addr = val;
            continue;
        }
        long long ms = parse_ms(val);
        if (ms < 0) {
            fprintf(stderr, "server-c: invalid %s %s\n", flag, val);
            return 2;
        }
        if (flag == ms_flags[0])
            opts.signal_drain_timeout_ms = (uint32_t)ms;
        else
            opts.drain_delay_ms = (uint32_t)ms;
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
    /* The outcome was printed by on_event (SERVER_EVENT_STOPPED). */
    return server_wait();
}
