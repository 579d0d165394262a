/*
 * Test harness for the graceserve C-ABI suite: checks, a raw-socket HTTP/1.1 client, sync
 * helpers and a small multi-route test handler. Every test runs in its own process (see
 * main.c), so a test may leave global state behind only if it fails.
 */
#ifndef GS_HARNESS_H
#define GS_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graceserve.h"

/* ---- checks -------------------------------------------------------------------------------- */

extern atomic_int g_failures;

void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void require_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Every check exists in an _AT form taking the file and line to report, for harness helpers
 * that check on their caller's behalf; fail is check_fail (go on) or require_fail (end the test).
 * The text of the checked expression is taken where the caller wrote it. */
#define GS_COND_AT_(fail, kind, file, line, text, cond)                       \
    do {                                                                      \
        if (!(cond)) fail(file, line, kind "(%s) failed", text);              \
    } while (0)
#define CHECK(cond) GS_COND_AT_(check_fail, "CHECK", __FILE__, __LINE__, #cond, cond)
#define REQUIRE(cond) GS_COND_AT_(require_fail, "REQUIRE", __FILE__, __LINE__, #cond, cond)
#define CHECK_AT(file, line, cond) GS_COND_AT_(check_fail, "CHECK", file, line, #cond, cond)

/* Compares two result codes / integers and prints both (with result-code names). */
#define GS_RC_AT_(fail, file, line, text, got, want)                                             \
    do {                                                                                       \
        long long gs_g_ = (long long)(got), gs_w_ = (long long)(want);                         \
        if (gs_g_ != gs_w_)                                                                    \
            fail(file, line, "%s: got %lld (%s), want %lld (%s); last_error: %s", text, gs_g_, \
                 server_result_str((int)gs_g_), gs_w_, server_result_str((int)gs_w_),          \
                 server_last_error());                                                         \
    } while (0)
#define CHECK_RC(got, want) GS_RC_AT_(check_fail, __FILE__, __LINE__, #got, got, want)
#define REQUIRE_RC(got, want) GS_RC_AT_(require_fail, __FILE__, __LINE__, #got, got, want)
#define CHECK_RC_AT(file, line, got, want) GS_RC_AT_(check_fail, file, line, #got, got, want)

#define GS_INT_AT_(file, line, text, got, want)                                                \
    do {                                                                                       \
        long long gs_g_ = (long long)(got), gs_w_ = (long long)(want);                         \
        if (gs_g_ != gs_w_) check_fail(file, line, "%s: got %lld, want %lld", text, gs_g_, gs_w_); \
    } while (0)
#define CHECK_INT(got, want) GS_INT_AT_(__FILE__, __LINE__, #got, got, want)
#define CHECK_INT_AT(file, line, got, want) GS_INT_AT_(file, line, #got, got, want)

#define GS_STR_AT_(file, line, text, got, want)                                                 \
    do {                                                                                        \
        const char *gs_g_ = (got), *gs_w_ = (want);                                             \
        if (gs_g_ == NULL || strcmp(gs_g_, gs_w_) != 0)                                         \
            check_fail(file, line, "%s: got \"%s\", want \"%s\"", text, gs_g_ ? gs_g_ : "(null)", \
                       gs_w_);                                                                  \
    } while (0)
#define CHECK_STR(got, want) GS_STR_AT_(__FILE__, __LINE__, #got, got, want)
#define CHECK_STR_AT(file, line, got, want) GS_STR_AT_(file, line, #got, got, want)

/* ---- time ---------------------------------------------------------------------------------- */

int64_t now_ms(void);
void sleep_ms(long ms);
/* Polls pred(arg) every few ms until true or timeout_ms passes; returns the last value. */
bool wait_until(bool (*pred)(void *), void *arg, long timeout_ms);

/* ---- events and gates ---------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count; /* times signalled */
} event_t;

void event_init(event_t *e);
void event_signal(event_t *e);
/* Waits until the event was signalled at least n times; false on timeout. */
bool event_wait_n(event_t *e, int n, long timeout_ms);
int event_count(event_t *e);

/* ---- HTTP client --------------------------------------------------------------------------- */

#define HTTP_MAX_HEADERS 64

typedef struct {
    int status;      /* -1: no status line received */
    int minor;       /* HTTP/1.<minor> */
    bool complete;   /* a full response (head + framed body) was read */
    bool chunked;
    size_t n_headers;
    char names[HTTP_MAX_HEADERS][64]; /* lower-cased */
    char values[HTTP_MAX_HEADERS][512];
    unsigned char *body; /* NUL-terminated for convenience; free with http_resp_free */
    size_t body_len;
    int err; /* errno of a failed connect/send, 0 otherwise */
} http_resp;

/* Connects to 127.0.0.1:port (blocking, 15 s receive/send timeouts). -1 with errno on failure. */
int tcp_connect(uint16_t port);
/* Sends all bytes; 0 or -1. */
int send_all(int fd, const void *buf, size_t len);
/* Reads one response from fd (Content-Length, chunked, or until EOF). 0 when complete. */
int http_read_response(int fd, http_resp *out);
/* Connect, send raw request bytes, read one response, close. 0 when complete. */
int http_exchange(uint16_t port, const void *req, size_t len, http_resp *out);
/* GET path with Connection: close. */
int http_get(uint16_t port, const char *path, http_resp *out);
/* POST body to path with Connection: close. */
int http_post(uint16_t port, const char *path, const void *body, size_t len, http_resp *out);
const char *http_header(const http_resp *r, const char *lower_name);
void http_resp_free(http_resp *r);
/* One GET on an open keep-alive connection (no Connection: close). 0 when complete. */
int http_get_on(int fd, const char *path, http_resp *out);
/* Connects (REQUIRE) and exchanges one GET / on the connection, which must answer 200: a
 * keep-alive connection the server has certainly accepted. Returns the fd. */
#define CONNECT_WARM(port) connect_warm_at(__FILE__, __LINE__, port)
int connect_warm_at(const char *file, int line, uint16_t port);
/* True when GET path (Connection: close) gets a complete answer with this status and, unless
 * want_body is NULL, this body; otherwise false, with what came instead in why. */
bool http_get_is(uint16_t port, const char *path, int status, const char *want_body, char *why,
                 size_t why_len);
/* CHECK that GET path answers status (and want_body unless NULL); reports the caller's line. */
#define CHECK_GET(port, path, status, want_body) \
    check_get_at(__FILE__, __LINE__, port, path, status, want_body)
void check_get_at(const char *file, int line, uint16_t port, const char *path, int status,
                  const char *want_body);
/* CHECK that POST body to path answers status (and want_body unless NULL). */
#define CHECK_POST(port, path, body, len, status, want_body) \
    check_post_at(__FILE__, __LINE__, port, path, body, len, status, want_body)
void check_post_at(const char *file, int line, uint16_t port, const char *path, const void *body,
                   size_t len, int status, const char *want_body);
/* True when a connect to 127.0.0.1:port is refused (nothing listens). */
bool port_refuses(uint16_t port);
/* Polls until connects to the port are refused (the listener closed); false after timeout_ms. */
bool wait_refused(uint16_t port, long timeout_ms);
/* True when this process can bind+listen 127.0.0.1:port itself (SO_REUSEADDR, as servers do). */
bool port_bindable(uint16_t port);
/* Binds+listens 127.0.0.1:0 and returns the fd; *port receives the port. */
int listen_any(uint16_t *port);

/* A request run on its own thread. */
typedef struct {
    pthread_t th;
    uint16_t port;
    char *raw;
    size_t len;
    http_resp resp;
    int rc;
    _Atomic int64_t done_at; /* 0 until the exchange ended */
} async_req;

void async_start(async_req *a, uint16_t port, const char *raw, size_t len);
void async_get(async_req *a, uint16_t port, const char *path);
void async_join(async_req *a);
void async_free(async_req *a);
/* async_get path, then REQUIRE that the test handler has been entered n times in all (the
 * request is in host code: /block, /stash, /sleep). */
#define ASYNC_ENTERED(a, port, path, n)                    \
    do {                                                   \
        async_get(a, port, path);                          \
        REQUIRE(event_wait_n(&th_entered, n, 10000));      \
    } while (0)
/* Joins a, CHECKs it got a complete answer with this status (and body unless NULL), frees it. */
#define CHECK_ANSWERED(a, status, want_body) check_answered_at(__FILE__, __LINE__, a, status, want_body)
void check_answered_at(const char *file, int line, async_req *a, int status, const char *want_body);
/* Joins a, CHECKs that the client got no 200 answer (the stop cut the request), frees it. */
#define CHECK_CUT(a) check_cut_at(__FILE__, __LINE__, a)
void check_cut_at(const char *file, int line, async_req *a);

/* ---- server helpers ------------------------------------------------------------------------ */

/* Options for an ephemeral 127.0.0.1:0 server owning no signals and using the test handler. */
void opts_local(struct server_options *o);
/* Starts (REQUIRE OK) and returns the bound port (REQUIRE non-zero). */
uint16_t start_or_die(const struct server_options *o);
/* start_or_die with opts_local's options and this handler (NULL: the built-in one). */
uint16_t start_local_with(server_handler_fn handler);
/* shutdown(timeout) must return want_shutdown, wait() want_wait; checks the port is free. */
#define stop_and_check(port, timeout_ms, want_shutdown, want_wait) \
    stop_and_check_at(__FILE__, __LINE__, port, timeout_ms, want_shutdown, want_wait)
void stop_and_check_at(const char *file, int line, uint16_t port, uint32_t timeout_ms,
                       int want_shutdown, int want_wait);
/* The default server after its stop was started: wait() returns want_wait, the stop cause is
 * want_cause, and the port refuses connections and can be bound again. */
#define CHECK_STOPPED(port, want_wait, want_cause) \
    check_stopped_at(__FILE__, __LINE__, port, want_wait, want_cause)
void check_stopped_at(const char *file, int line, uint16_t port, int want_wait, int want_cause);
/* Starts an instance (REQUIRE OK, a handle, a bound port). */
server_instance *instance_start_or_die(const struct server_options *o);

/* server_shutdown / server_instance_shutdown (srv not NULL) on a thread of its own. */
typedef struct {
    pthread_t th;
    server_instance *srv;
    uint32_t timeout;
    atomic_int rc;
    atomic_bool done;
    _Atomic int64_t returned_at;
} shutdown_call;
void shutdown_async(shutdown_call *c, server_instance *srv, uint32_t timeout_ms);
/* Joins the call and returns its result. */
int shutdown_join(shutdown_call *c);

/* The multi-route test handler (userdata unused):
 *   GET  /              200 "OK"
 *   GET  /sleep?ms=N    200 "slept N" after N ms
 *   POST /echo          200, body echoed
 *   GET  /block         signals th_entered, waits for th_release (30 s safety), then tries to
 *                       answer 200 "released"; the respond result goes to th_block_rc and the
 *                       cancelled flag seen before answering to th_block_cancelled
 *   GET  /stash         stores the request in th_stash (unanswered, not freed), signals th_entered
 *   else                404 */
void th_handler(void *userdata, struct server_request *req);
extern event_t th_entered;
extern event_t th_release;
extern event_t th_block_done;
extern atomic_int th_block_rc;
extern atomic_int th_block_cancelled;
extern struct server_request *_Atomic th_stash;
void th_reset(void);

/* Releases the /block handlers and CHECKs that n of them in all have returned. */
#define RELEASE_BLOCKED(n)                                   \
    do {                                                     \
        event_signal(&th_release);                           \
        CHECK(event_wait_n(&th_block_done, n, 10000));       \
    } while (0)

/* A handler that answers every request 200 with the NUL-terminated string in userdata. */
void tag_handler(void *userdata, struct server_request *req);

/* The handler installed for sig right now (SIG_DFL, SIG_IGN or a function). */
void (*current_handler(int sig))(int);

/* userdata drop counter helper: userdata points at an atomic_int that drop increments. */
void drop_count(void *userdata);
/* Polls until *c reaches want (or timeout_ms passes) and returns its value. userdata_drop may run
 * on a library thread a moment after server_wait returns (the runtime is shut down in the
 * background), so tests that count drops poll for them and use a fresh counter per server. */
int wait_count(atomic_int *c, int want, long timeout_ms);
/* Waits until this process runs only its main thread (library threads gone), max timeout_ms. */
bool settle_threads(long timeout_ms);
int thread_count(void);

/* /proc/self helpers */
long vm_rss_kb(void);
int open_fd_count(void);

/* test_systemd.c: the successor process of the upgrade test (gs_tests --serve ADDR TAG). */
int gs_serve_child(int argc, char **argv);

#endif
