#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

atomic_int g_failures;

static void vreport(const char *kind, const char *file, int line, const char *fmt, va_list ap) {
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "    %s %s:%d: %s\n", kind, file, line, msg);
    fflush(stderr);
}

void check_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport("FAIL", file, line, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&g_failures, 1);
}

_Noreturn void require_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport("FATAL", file, line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    _exit(1); /* skip LSan: the test aborted with a server possibly still running */
}

void note(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "    note: %s\n", msg);
}

/* ---- time ---------------------------------------------------------------------------------- */

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool wait_until(bool (*pred)(void *), void *arg, long timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        if (pred(arg)) return true;
        if (now_ms() >= end) return pred(arg);
        sleep_ms(5);
    }
}

/* ---- events -------------------------------------------------------------------------------- */

void event_init(event_t *e) {
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->count = 0;
}

void event_signal(event_t *e) {
    pthread_mutex_lock(&e->mu);
    e->count++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

bool event_wait_n(event_t *e, int n, long timeout_ms) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    while (e->count < n && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&e->cv, &e->mu, &dl);
    bool ok = e->count >= n;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

int event_count(event_t *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->count;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- HTTP client --------------------------------------------------------------------------- */

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

int tcp_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {15, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

typedef struct {
    int fd;
    char *buf;
    size_t len, cap, pos; /* pos: consumed */
    bool eof;
} reader;

/* Reads more bytes; false on EOF/error/timeout. */
static bool fill(reader *r) {
    if (r->eof) return false;
    if (r->cap - r->len < 4096) {
        r->cap = r->cap ? r->cap * 2 : 16384;
        r->buf = realloc(r->buf, r->cap);
        if (!r->buf) abort();
    }
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            r->eof = true;
            return false;
        }
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
        return true;
    }
}

/* Returns the index just after the next CRLF at or after pos, or 0 when not yet available. */
static size_t line_end(reader *r) {
    for (;;) {
        for (size_t i = r->pos; i + 1 < r->len; i++)
            if (r->buf[i] == '\r' && r->buf[i + 1] == '\n') return i + 2;
        if (!fill(r)) return 0;
    }
}

static bool need(reader *r, size_t n) {
    while (r->len - r->pos < n)
        if (!fill(r)) return false;
    return true;
}

static void body_append(http_resp *out, const char *p, size_t n) {
    out->body = realloc(out->body, out->body_len + n + 1);
    if (!out->body) abort();
    memcpy(out->body + out->body_len, p, n);
    out->body_len += n;
    out->body[out->body_len] = '\0';
}

int http_read_response(int fd, http_resp *out) {
    memset(out, 0, sizeof *out);
    out->status = -1;
    out->body = calloc(1, 1);
    reader r = {fd, NULL, 0, 0, 0, false};
    int rc = -1;
    size_t e = line_end(&r);
    if (!e) goto done;
    if (sscanf(r.buf, "HTTP/1.%d %d", &out->minor, &out->status) != 2) {
        out->status = -1;
        goto done;
    }
    r.pos = e;
    long long clen = -1;
    for (;;) {
        e = line_end(&r);
        if (!e) goto done;
        if (e - r.pos == 2) {
            r.pos = e;
            break;
        }
        char *line = r.buf + r.pos;
        size_t ll = e - r.pos - 2;
        char *colon = memchr(line, ':', ll);
        if (colon && out->n_headers < HTTP_MAX_HEADERS) {
            size_t nl = (size_t)(colon - line);
            if (nl > 63) nl = 63;
            char *name = out->names[out->n_headers];
            for (size_t i = 0; i < nl; i++) name[i] = (char)tolower((unsigned char)line[i]);
            name[nl] = '\0';
            const char *v = colon + 1;
            while (v < line + ll && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(line + ll - v);
            if (vl > 511) vl = 511;
            memcpy(out->values[out->n_headers], v, vl);
            out->values[out->n_headers][vl] = '\0';
            if (strcmp(name, "content-length") == 0) clen = atoll(out->values[out->n_headers]);
            if (strcmp(name, "transfer-encoding") == 0 &&
                strcasestr(out->values[out->n_headers], "chunked"))
                out->chunked = true;
            out->n_headers++;
        }
        r.pos = e;
    }
    if (out->status == 204 || out->status == 304 || (out->status >= 100 && out->status < 200)) {
        rc = 0;
    } else if (out->chunked) {
        for (;;) {
            e = line_end(&r);
            if (!e) goto done;
            unsigned long long sz = strtoull(r.buf + r.pos, NULL, 16);
            r.pos = e;
            if (sz == 0) {
                /* trailers until an empty line */
                for (;;) {
                    e = line_end(&r);
                    if (!e) goto done;
                    bool empty = e - r.pos == 2;
                    r.pos = e;
                    if (empty) break;
                }
                rc = 0;
                break;
            }
            if (!need(&r, (size_t)sz + 2)) goto done;
            body_append(out, r.buf + r.pos, (size_t)sz);
            r.pos += (size_t)sz + 2;
        }
    } else if (clen >= 0) {
        if (!need(&r, (size_t)clen)) {
            body_append(out, r.buf + r.pos, r.len - r.pos);
            goto done;
        }
        body_append(out, r.buf + r.pos, (size_t)clen);
        rc = 0;
    } else {
        while (fill(&r)) {
        }
        body_append(out, r.buf + r.pos, r.len - r.pos);
        rc = 0;
    }
done:
    out->complete = rc == 0;
    free(r.buf);
    return rc;
}

/* An empty response for a request that could not be sent (errno e); returns -1. */
static int not_sent(http_resp *out, int e) {
    memset(out, 0, sizeof *out);
    out->status = -1;
    out->body = calloc(1, 1);
    out->err = e;
    return -1;
}

int http_exchange(uint16_t port, const void *req, size_t len, http_resp *out) {
    int fd = tcp_connect(port);
    if (fd < 0) return not_sent(out, errno);
    if (send_all(fd, req, len) != 0) {
        int e = errno;
        /* the server may have answered and closed already; still try to read */
        int rc = http_read_response(fd, out);
        if (rc != 0) out->err = e;
        close(fd);
        return rc;
    }
    int rc = http_read_response(fd, out);
    close(fd);
    return rc;
}

int http_get(uint16_t port, const char *path, http_resp *out) {
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     path);
    return http_exchange(port, req, (size_t)n, out);
}

int http_post(uint16_t port, const char *path, const void *body, size_t len, http_resp *out) {
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, len);
    char *req = malloc((size_t)n + len);
    memcpy(req, head, (size_t)n);
    if (len) memcpy(req + n, body, len);
    int rc = http_exchange(port, req, (size_t)n + len, out);
    free(req);
    return rc;
}

int http_get_on(int fd, const char *path, http_resp *out) {
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send_all(fd, req, (size_t)n) != 0) return not_sent(out, errno);
    return http_read_response(fd, out);
}

int connect_warm_at(const char *file, int line, uint16_t port) {
    int fd = tcp_connect(port);
    if (fd < 0) require_fail(file, line, "connect to %u: %s", port, strerror(errno));
    http_resp r;
    CHECK_AT(file, line, http_get_on(fd, "/", &r) == 0);
    CHECK_INT_AT(file, line, r.status, 200);
    http_resp_free(&r);
    return fd;
}

/* Compares a response with the expected status and body; false with a description in why. */
static bool resp_is(const char *what, int rc, const http_resp *r, int status, const char *want_body,
                    char *why, size_t why_len) {
    if (rc == 0 && r->status == status && (!want_body || strcmp((const char *)r->body, want_body) == 0))
        return true;
    snprintf(why, why_len, "%s: %s, status %d (want %d), body \"%.200s\"%s%s%s", what,
             rc == 0 ? "complete" : "incomplete", r->status, status, r->body ? (const char *)r->body : "",
             want_body ? " (want \"" : "", want_body ? want_body : "", want_body ? "\")" : "");
    return false;
}

bool http_get_is(uint16_t port, const char *path, int status, const char *want_body, char *why,
                 size_t why_len) {
    http_resp r;
    int rc = http_get(port, path, &r);
    char what[300];
    snprintf(what, sizeof what, "GET %s on %u", path, port);
    bool ok = resp_is(what, rc, &r, status, want_body, why, why_len);
    http_resp_free(&r);
    return ok;
}

void check_get_at(const char *file, int line, uint16_t port, const char *path, int status,
                  const char *want_body) {
    char why[600];
    if (!http_get_is(port, path, status, want_body, why, sizeof why)) check_fail(file, line, "%s", why);
}

void check_post_at(const char *file, int line, uint16_t port, const char *path, const void *body,
                   size_t len, int status, const char *want_body) {
    http_resp r;
    int rc = http_post(port, path, body, len, &r);
    char what[300], why[600];
    snprintf(what, sizeof what, "POST %s on %u", path, port);
    if (!resp_is(what, rc, &r, status, want_body, why, sizeof why)) check_fail(file, line, "%s", why);
    http_resp_free(&r);
}

const char *http_header(const http_resp *r, const char *lower_name) {
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcmp(r->names[i], lower_name) == 0) return r->values[i];
    return NULL;
}

void http_resp_free(http_resp *r) {
    free(r->body);
    r->body = NULL;
}

bool port_refuses(uint16_t port) {
    int fd = tcp_connect(port);
    if (fd >= 0) {
        close(fd);
        return false;
    }
    return errno == ECONNREFUSED;
}

static bool refuses_pred(void *arg) { return port_refuses(*(uint16_t *)arg); }

bool wait_refused(uint16_t port, long timeout_ms) { return wait_until(refuses_pred, &port, timeout_ms); }

bool port_bindable(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = loopback(port);
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1) == 0;
    close(fd);
    return ok;
}

int listen_any(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = loopback(0);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void *async_main(void *arg) {
    async_req *a = arg;
    a->rc = http_exchange(a->port, a->raw, a->len, &a->resp);
    a->done_at = now_ms();
    return NULL;
}

void async_start(async_req *a, uint16_t port, const char *raw, size_t len) {
    memset(a, 0, sizeof *a);
    a->port = port;
    a->raw = malloc(len);
    memcpy(a->raw, raw, len);
    a->len = len;
    REQUIRE(pthread_create(&a->th, NULL, async_main, a) == 0);
}

void async_get(async_req *a, uint16_t port, const char *path) {
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     path);
    async_start(a, port, req, (size_t)n);
}

void async_join(async_req *a) { pthread_join(a->th, NULL); }

void async_free(async_req *a) {
    free(a->raw);
    a->raw = NULL;
    http_resp_free(&a->resp);
}

void check_answered_at(const char *file, int line, async_req *a, int status, const char *want_body) {
    async_join(a);
    char why[600];
    if (!resp_is("the request", a->rc, &a->resp, status, want_body, why, sizeof why))
        check_fail(file, line, "%s", why);
    async_free(a);
}

void check_cut_at(const char *file, int line, async_req *a) {
    async_join(a);
    CHECK_AT(file, line, a->resp.status != 200);
    async_free(a);
}

/* ---- server helpers ------------------------------------------------------------------------ */

void opts_local(struct server_options *o) {
    REQUIRE_RC(server_options_init(o, SERVER_OPTIONS_VERSION), SERVER_OK);
    o->addr = "127.0.0.1:0";
    o->signals = SERVER_SIGNALS_HOST;
    o->handler = th_handler;
    o->worker_threads = 2;
}

uint16_t start_or_die(const struct server_options *o) {
    REQUIRE_RC(server_start(o), SERVER_OK);
    uint16_t port = server_local_port();
    REQUIRE(port != 0);
    return port;
}

uint16_t start_local_with(server_handler_fn handler) {
    struct server_options o;
    opts_local(&o);
    o.handler = handler;
    return start_or_die(&o);
}

void stop_and_check_at(const char *file, int line, uint16_t port, uint32_t timeout_ms,
                       int want_shutdown, int want_wait) {
    CHECK_RC_AT(file, line, server_shutdown(timeout_ms), want_shutdown);
    CHECK_RC_AT(file, line, server_wait(), want_wait);
    CHECK_AT(file, line, port_refuses(port));
    CHECK_AT(file, line, port_bindable(port));
    CHECK_INT_AT(file, line, server_local_port(), 0);
}

void check_stopped_at(const char *file, int line, uint16_t port, int want_wait, int want_cause) {
    CHECK_RC_AT(file, line, server_wait(), want_wait);
    CHECK_INT_AT(file, line, server_last_stop_cause(), want_cause);
    CHECK_AT(file, line, port_refuses(port));
    CHECK_AT(file, line, port_bindable(port));
}

server_instance *instance_start_or_die(const struct server_options *o) {
    server_instance *srv = (server_instance *)(uintptr_t)1; /* must be overwritten */
    REQUIRE_RC(server_instance_start(&srv, o), SERVER_OK);
    REQUIRE(srv != NULL);
    REQUIRE(server_instance_local_port(srv) != 0);
    return srv;
}

static void *shutdown_main(void *arg) {
    shutdown_call *c = arg;
    c->rc = c->srv ? server_instance_shutdown(c->srv, c->timeout) : server_shutdown(c->timeout);
    c->returned_at = now_ms();
    c->done = true;
    return NULL;
}

void shutdown_async(shutdown_call *c, server_instance *srv, uint32_t timeout_ms) {
    c->srv = srv;
    c->timeout = timeout_ms;
    c->rc = -1;
    c->done = false;
    c->returned_at = 0;
    REQUIRE(pthread_create(&c->th, NULL, shutdown_main, c) == 0);
}

int shutdown_join(shutdown_call *c) {
    pthread_join(c->th, NULL);
    return c->rc;
}

/* ---- test handler -------------------------------------------------------------------------- */

event_t th_entered, th_release, th_block_done;
atomic_int th_block_rc = -1;
atomic_int th_block_cancelled = -1;
struct server_request *_Atomic th_stash;

void th_reset(void) {
    event_init(&th_entered);
    event_init(&th_release);
    event_init(&th_block_done);
    th_block_rc = -1;
    th_block_cancelled = -1;
    th_stash = NULL;
}

static void answer(struct server_request *req, uint16_t status, const char *body) {
    int rc = server_respond(req, status, NULL, 0, (const uint8_t *)body, strlen(body));
    if (rc != SERVER_OK && rc != SERVER_ERR_CLOSED)
        check_fail(__FILE__, __LINE__, "respond %d: %s", rc, server_last_error());
    server_request_free(req);
}

void th_handler(void *userdata, struct server_request *req) {
    (void)userdata;
    const char *m = server_request_method(req), *p = server_request_path(req);
    if (strcmp(p, "/") == 0 && strcmp(m, "GET") == 0) {
        answer(req, 200, "OK");
    } else if (strcmp(p, "/sleep") == 0) {
        const char *q = server_request_query(req);
        long ms = strncmp(q, "ms=", 3) == 0 ? atol(q + 3) : 0;
        event_signal(&th_entered);
        sleep_ms(ms);
        char body[64];
        snprintf(body, sizeof body, "slept %ld", ms);
        answer(req, 200, body);
    } else if (strcmp(p, "/echo") == 0 && strcmp(m, "POST") == 0) {
        const uint8_t *b = NULL;
        size_t n = 0;
        CHECK_RC(server_request_body(req, &b, &n), SERVER_OK);
        CHECK_RC(server_respond(req, 200, NULL, 0, b, n), SERVER_OK);
        server_request_free(req);
    } else if (strcmp(p, "/block") == 0) {
        event_signal(&th_entered);
        event_wait_n(&th_release, 1, 30000);
        th_block_cancelled = server_request_cancelled(req);
        th_block_rc = server_respond(req, 200, NULL, 0, (const uint8_t *)"released", 8);
        server_request_free(req);
        event_signal(&th_block_done);
    } else if (strcmp(p, "/answer-then-block") == 0) {
        answer(req, 200, "early");
        event_signal(&th_entered);
        event_wait_n(&th_release, 1, 30000);
        event_signal(&th_block_done);
    } else if (strcmp(p, "/stash") == 0) {
        th_stash = req;
        event_signal(&th_entered);
    } else {
        answer(req, 404, "not found\n");
    }
}

void tag_handler(void *userdata, struct server_request *req) {
    const char *tag = userdata;
    int rc = server_respond(req, 200, NULL, 0, (const uint8_t *)tag, strlen(tag));
    if (rc != SERVER_OK && rc != SERVER_ERR_CLOSED)
        check_fail(__FILE__, __LINE__, "respond %d: %s", rc, server_last_error());
    server_request_free(req);
}

void (*current_handler(int sig))(int) {
    struct sigaction cur;
    sigaction(sig, NULL, &cur);
    return cur.sa_handler;
}

void drop_count(void *userdata) { atomic_fetch_add((atomic_int *)userdata, 1); }

int wait_count(atomic_int *c, int want, long timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (atomic_load(c) < want && now_ms() < end) sleep_ms(2);
    return atomic_load(c);
}

/* Entries of a /proc directory, not counting . and ..; -1 when it cannot be read. */
static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

int thread_count(void) { return dir_entries("/proc/self/task"); }

bool settle_threads(long timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (thread_count() != 1 && now_ms() < end) sleep_ms(5);
    return thread_count() == 1;
}

long vm_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    fclose(f);
    return kb;
}

int open_fd_count(void) {
    int n = dir_entries("/proc/self/fd");
    return n < 0 ? -1 : n - 1; /* the directory's own fd */
}
