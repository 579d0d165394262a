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

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);      \
    } while (0)

#define REQUIRE(cond)                                                                \
    do {                                                                             \
        if (!(cond)) require_fail(__FILE__, __LINE__, "REQUIRE(%s) failed", #cond);  \
    } while (0)

/* Compares two result codes / integers and prints both (with result-code names). */
#define CHECK_RC(got, want)                                                                     \
    do {                                                                                        \
        long long gs_g_ = (long long)(got), gs_w_ = (long long)(want);                          \
        if (gs_g_ != gs_w_)                                                                     \
            check_fail(__FILE__, __LINE__, "%s: got %lld (%s), want %lld (%s); last_error: %s", \
                       #got, gs_g_, server_result_str((int)gs_g_), gs_w_,                       \
                       server_result_str((int)gs_w_), server_last_error());                     \
    } while (0)

#define REQUIRE_RC(got, want)                                                                     \
    do {                                                                                          \
        long long gs_g_ = (long long)(got), gs_w_ = (long long)(want);                            \
        if (gs_g_ != gs_w_)                                                                       \
            require_fail(__FILE__, __LINE__, "%s: got %lld (%s), want %lld (%s); last_error: %s", \
                         #got, gs_g_, server_result_str((int)gs_g_), gs_w_,                       \
                         server_result_str((int)gs_w_), server_last_error());                     \
    } while (0)

#define CHECK_INT(got, want)                                                                   \
    do {                                                                                       \
        long long gs_g_ = (long long)(got), gs_w_ = (long long)(want);                         \
        if (gs_g_ != gs_w_)                                                                    \
            check_fail(__FILE__, __LINE__, "%s: got %lld, want %lld", #got, gs_g_, gs_w_);     \
    } while (0)

#define CHECK_STR(got, want)                                                                    \
    do {                                                                                        \
        const char *gs_g_ = (got), *gs_w_ = (want);                                             \
        if (gs_g_ == NULL || strcmp(gs_g_, gs_w_) != 0)                                         \
            check_fail(__FILE__, __LINE__, "%s: got \"%s\", want \"%s\"", #got,                 \
                       gs_g_ ? gs_g_ : "(null)", gs_w_);                                        \
    } while (0)

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
/* True when a connect to 127.0.0.1:port is refused (nothing listens). */
bool port_refuses(uint16_t port);
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

/* ---- server helpers ------------------------------------------------------------------------ */

/* Options for an ephemeral 127.0.0.1:0 server owning no signals and using the test handler. */
void opts_local(struct server_options *o);
/* Starts (REQUIRE OK) and returns the bound port (REQUIRE non-zero). */
uint16_t start_or_die(const struct server_options *o);
/* shutdown(timeout) must return want_shutdown, wait() want_wait; checks the port is free. */
void stop_and_check(uint16_t port, uint32_t timeout_ms, int want_shutdown, int want_wait);

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
