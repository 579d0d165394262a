/* Lifecycle in-process: serving, the request API, answering later/streamed, drain, restart. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

void test_builtin_ok(void) {
    struct server_options o;
    opts_local(&o);
    o.handler = NULL;
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_NONE);
    uint16_t port = start_or_die(&o);

    char addr[64], want[64];
    size_t n = 0;
    CHECK_RC(server_local_addr(addr, sizeof addr, &n), SERVER_OK);
    snprintf(want, sizeof want, "127.0.0.1:%u", port);
    CHECK_STR(addr, want);
    CHECK_INT(n, strlen(want));
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_NONE);
    CHECK_RC(server_wait_timeout(0), SERVER_STILL_RUNNING);

    const char *paths[] = {"/", "/anything?x=1", "/deep/path"};
    for (size_t i = 0; i < 3; i++) CHECK_GET(port, paths[i], 200, "OK");
    CHECK_POST(port, "/echo", "ignored", 7, 200, "OK");

    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_get_stats(&st), SERVER_OK);
    CHECK(st.requests_total >= 4);
    CHECK(st.connections_total >= 4);

    stop_and_check(port, 5000, SERVER_OK, 0);
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_GRACEFUL_CALL);
}

/* ---- the request API, seen from a C handler ---------------------------------------------- */

static atomic_int api_calls;

static void api_handler(void *ud, struct server_request *req) {
    (void)ud;
    atomic_fetch_add(&api_calls, 1);
    const char *path = server_request_path(req);
    if (strcmp(path, "/v10") == 0) {
        CHECK_INT(server_request_version(req), 10);
        CHECK_STR(server_request_method(req), "GET");
        CHECK_STR(server_request_query(req), ""); /* empty, not NULL */
        const uint8_t *b = NULL;
        size_t bl = 99;
        CHECK_RC(server_request_body(req, &b, &bl), SERVER_OK);
        CHECK(b != NULL);
        CHECK_INT(bl, 0);
        CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"old", 3), SERVER_OK);
        server_request_free(req);
        return;
    }
    CHECK_STR(server_request_method(req), "POST");
    CHECK_STR(path, "/path/a%20b");
    CHECK_STR(server_request_query(req), "x=1&y=two");
    CHECK_INT(server_request_version(req), 11);
    const char *ra = server_request_remote_addr(req);
    CHECK(ra != NULL && strncmp(ra, "127.0.0.1:", 10) == 0 && atoi(ra + 10) > 0);
    CHECK_INT(server_request_cancelled(req), 0);

    const uint8_t *v = NULL;
    size_t vl = 0;
    CHECK_RC(server_request_header(req, "x-test", &v, &vl), SERVER_OK);
    CHECK(vl == 5 && memcmp(v, "hello", 5) == 0);
    CHECK_RC(server_request_header(req, "X-TEST", &v, &vl), SERVER_OK); /* case-insensitive */
    CHECK(vl == 5 && memcmp(v, "hello", 5) == 0);
    CHECK_RC(server_request_header(req, "x-multi", &v, &vl), SERVER_OK); /* first value */
    CHECK(vl == 1 && v[0] == 'a');
    CHECK_RC(server_request_header(req, "x-missing", &v, &vl), SERVER_ERR_NOT_FOUND);
    CHECK_RC(server_request_header(req, "bad name", &v, &vl), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_request_header(req, "", &v, &vl), SERVER_ERR_INVALID_ARGUMENT);

    /* host, x-test, x-multi x2, content-type, content-length, connection */
    size_t count = server_request_header_count(req);
    CHECK_INT(count, 7);
    int multi = 0, xtest = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *nm = NULL, *val = NULL;
        size_t nl = 0, vlen = 0;
        CHECK_RC(server_request_header_at(req, i, &nm, &nl, &val, &vlen), SERVER_OK);
        for (size_t k = 0; k < nl; k++) CHECK(!(nm[k] >= 'A' && nm[k] <= 'Z')); /* lower-case */
        if (nl == 7 && memcmp(nm, "x-multi", 7) == 0) {
            /* arrival order: a then b */
            CHECK(vlen == 1 && val[0] == (multi == 0 ? 'a' : 'b'));
            multi++;
        }
        if (nl == 6 && memcmp(nm, "x-test", 6) == 0) xtest++;
    }
    CHECK_INT(multi, 2);
    CHECK_INT(xtest, 1);
    const uint8_t *nm = NULL, *val = NULL;
    size_t nl = 0, vlen = 0;
    CHECK_RC(server_request_header_at(req, count, &nm, &nl, &val, &vlen), SERVER_ERR_NOT_FOUND);
    CHECK_RC(server_request_header_at(req, SIZE_MAX, &nm, &nl, &val, &vlen), SERVER_ERR_NOT_FOUND);

    const uint8_t *body = NULL;
    size_t blen = 0;
    CHECK_RC(server_request_body(req, &body, &blen), SERVER_OK);
    CHECK(blen == 11 && memcmp(body, "hello world", 11) == 0);

    char out[64];
    int n = snprintf(out, sizeof out, "got:%.*s", (int)blen, (const char *)body);
    struct server_header hs[] = {
        {(const uint8_t *)"X-Reply", 7, (const uint8_t *)"yes", 3},
        {(const uint8_t *)"content-type", 12, (const uint8_t *)"text/plain", 10},
    };
    CHECK_RC(server_respond(req, 201, hs, 2, (const uint8_t *)out, (size_t)n), SERVER_OK);
    CHECK_INT(server_request_cancelled(req), 0); /* answered: 0 */
    server_request_free(req);
}

void test_handler_request_api(void) {
    uint16_t port = start_local_with(api_handler);

    const char *raw =
        "POST /path/a%20b?x=1&y=two HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Test: hello\r\n"
        "X-Multi: a\r\nX-Multi: b\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
        "Connection: close\r\n\r\nhello world";
    http_resp r;
    CHECK(http_exchange(port, raw, strlen(raw), &r) == 0);
    CHECK_INT(r.status, 201);
    CHECK_STR(http_header(&r, "x-reply"), "yes");
    CHECK_STR(http_header(&r, "content-type"), "text/plain");
    CHECK_STR(http_header(&r, "content-length"), "15");
    CHECK_STR((const char *)r.body, "got:hello world");
    http_resp_free(&r);

    const char *raw10 = "GET /v10 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    CHECK(http_exchange(port, raw10, strlen(raw10), &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR((const char *)r.body, "old");
    http_resp_free(&r);

    CHECK_INT(atomic_load(&api_calls), 2);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- keep-alive: several requests on one connection -------------------------------------- */

void test_keepalive_and_routes(void) {
    uint16_t port = start_local_with(th_handler);
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    for (int i = 0; i < 5; i++) {
        const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde";
        CHECK(send_all(fd, req, strlen(req)) == 0);
        http_resp r;
        CHECK(http_read_response(fd, &r) == 0);
        CHECK_INT(r.status, 200);
        CHECK_STR((const char *)r.body, "abcde");
        http_resp_free(&r);
    }
    http_resp r;
    CHECK(http_get_on(fd, "/nope", &r) == 0);
    CHECK_INT(r.status, 404);
    http_resp_free(&r);
    close(fd);

    /* a binary body with NULs comes back byte for byte */
    unsigned char big[70000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7);
    CHECK(http_post(port, "/echo", big, sizeof big, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body_len == sizeof big && memcmp(r.body, big, sizeof big) == 0);
    http_resp_free(&r);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- answering later, from another thread ------------------------------------------------- */

#define LATER_N 6
static struct server_request *later_q[LATER_N];
static int later_len;
static pthread_mutex_t later_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t later_cv = PTHREAD_COND_INITIALIZER;
static atomic_int later_handler_returned;

static void later_handler(void *ud, struct server_request *req) {
    (void)ud;
    pthread_mutex_lock(&later_mu);
    if (later_len < LATER_N) later_q[later_len++] = req;
    pthread_cond_signal(&later_cv);
    pthread_mutex_unlock(&later_mu);
    atomic_fetch_add(&later_handler_returned, 1);
}

static void *later_responder(void *arg) {
    (void)arg;
    for (int done = 0; done < LATER_N; done++) {
        pthread_mutex_lock(&later_mu);
        while (later_len <= done) pthread_cond_wait(&later_cv, &later_mu);
        struct server_request *req = later_q[done];
        pthread_mutex_unlock(&later_mu);
        sleep_ms(20); /* the handler has long returned */
        char body[64];
        int n = snprintf(body, sizeof body, "later %s", server_request_query(req));
        CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)body, (size_t)n), SERVER_OK);
        server_request_free(req);
    }
    return NULL;
}

void test_reply_later_other_thread(void) {
    uint16_t port = start_local_with(later_handler);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, later_responder, NULL) == 0);
    async_req a[LATER_N];
    for (int i = 0; i < LATER_N; i++) {
        char p[32];
        snprintf(p, sizeof p, "/?%d", i);
        async_get(&a[i], port, p);
    }
    for (int i = 0; i < LATER_N; i++) {
        async_join(&a[i]);
        char want[32];
        snprintf(want, sizeof want, "later %d", i);
        CHECK(a[i].rc == 0);
        CHECK_INT(a[i].resp.status, 200);
        CHECK_STR((const char *)a[i].resp.body, want);
        async_free(&a[i]);
    }
    pthread_join(th, NULL);
    CHECK_INT(atomic_load(&later_handler_returned), LATER_N);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- streamed responses ------------------------------------------------------------------- */

#define BIG_CHUNK (256 * 1024)

static void *stream_finisher(void *arg) {
    struct server_stream *s = arg;
    unsigned char *big = malloc(BIG_CHUNK);
    for (size_t i = 0; i < BIG_CHUNK; i++) big[i] = (unsigned char)('a' + i % 26);
    CHECK_RC(server_stream_write(s, big, BIG_CHUNK), SERVER_OK);
    CHECK_RC(server_stream_write(s, (const uint8_t *)"", 0), SERVER_OK);
    CHECK_RC(server_stream_write(s, (const uint8_t *)"|end", 4), SERVER_OK);
    free(big);
    server_stream_free(s);
    return NULL;
}

static void stream_handler(void *ud, struct server_request *req) {
    (void)ud;
    struct server_header h = {(const uint8_t *)"content-type", 12, (const uint8_t *)"text/x-test", 11};
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 200, &h, 1, &s), SERVER_OK);
    REQUIRE(s != NULL);
    struct server_stream *s2 = NULL;
    CHECK_RC(server_respond_stream(req, 200, NULL, 0, &s2), SERVER_ERR_ALREADY_USED);
    CHECK(s2 == NULL);
    CHECK_RC(server_respond(req, 200, NULL, 0, NULL, 0), SERVER_ERR_ALREADY_USED);
    server_request_free(req); /* the stream is independent of the request */
    CHECK_RC(server_stream_write(s, (const uint8_t *)"part1-", 6), SERVER_OK);
    CHECK_RC(server_stream_write(s, (const uint8_t *)"part2|", 6), SERVER_OK);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, stream_finisher, s) == 0);
    pthread_detach(th);
}

void test_streaming_response(void) {
    uint16_t port = start_local_with(stream_handler);
    http_resp r;
    CHECK(http_get(port, "/stream", &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.chunked);
    CHECK_STR(http_header(&r, "content-type"), "text/x-test");
    CHECK_INT(r.body_len, 12 + BIG_CHUNK + 4);
    if (r.body_len == 12 + BIG_CHUNK + 4) {
        CHECK(memcmp(r.body, "part1-part2|", 12) == 0);
        bool ok = true;
        for (size_t i = 0; i < BIG_CHUNK; i++) ok = ok && r.body[12 + i] == 'a' + i % 26;
        CHECK(ok);
        CHECK(memcmp(r.body + 12 + BIG_CHUNK, "|end", 4) == 0);
    }
    http_resp_free(&r);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* A client that goes away mid-stream: writes end in SERVER_ERR_CLOSED, never block forever. */
static event_t gone_ev;
static atomic_int gone_rc = -1;
static void gone_handler(void *ud, struct server_request *req) {
    (void)ud;
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 200, NULL, 0, &s), SERVER_OK);
    server_request_free(req);
    event_signal(&gone_ev);
    static uint8_t chunk[16384];
    int rc = SERVER_OK;
    int64_t end = now_ms() + 20000;
    while (rc == SERVER_OK && now_ms() < end) rc = server_stream_write(s, chunk, sizeof chunk);
    gone_rc = rc;
    server_stream_free(s);
    event_signal(&gone_ev);
}

void test_stream_client_gone(void) {
    event_init(&gone_ev);
    uint16_t port = start_local_with(gone_handler);
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(send_all(fd, req, strlen(req)) == 0);
    CHECK(event_wait_n(&gone_ev, 1, 10000));
    char buf[100];
    CHECK(recv(fd, buf, sizeof buf, 0) > 0);
    close(fd);
    CHECK(event_wait_n(&gone_ev, 2, 15000));
    CHECK_RC(gone_rc, SERVER_ERR_CLOSED);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- answer-once rules and bad arguments -------------------------------------------------- */

static void unanswered_handler(void *ud, struct server_request *req) {
    (void)ud;
    server_request_free(req);
}

void test_free_unanswered_is_500(void) {
    uint16_t port = start_local_with(unanswered_handler);
    CHECK_GET(port, "/", 500, NULL);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

static void twice_handler(void *ud, struct server_request *req) {
    (void)ud;
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"first", 5), SERVER_OK);
    CHECK_RC(server_respond(req, 202, NULL, 0, (const uint8_t *)"second", 6), SERVER_ERR_ALREADY_USED);
    CHECK_INT(server_last_error_code(), SERVER_ERR_ALREADY_USED);
    CHECK(server_last_error()[0] != '\0');
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 200, NULL, 0, &s), SERVER_ERR_ALREADY_USED);
    server_request_free(req);
}

void test_respond_twice_already_used(void) {
    uint16_t port = start_local_with(twice_handler);
    CHECK_GET(port, "/", 200, "first");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

static void invalid_handler(void *ud, struct server_request *req) {
    (void)ud;
    const uint8_t *b = (const uint8_t *)"x";
    CHECK_RC(server_respond(req, 42, NULL, 0, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_INT(server_last_error_code(), SERVER_ERR_INVALID_ARGUMENT);
    CHECK(server_last_error()[0] != '\0');
    CHECK_RC(server_respond(req, 0, NULL, 0, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond(req, 1000, NULL, 0, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond(req, 65535, NULL, 0, b, 1), SERVER_ERR_INVALID_ARGUMENT);

    struct server_header bad_name = {(const uint8_t *)"bad name", 8, (const uint8_t *)"v", 1};
    CHECK_RC(server_respond(req, 200, &bad_name, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header empty_name = {(const uint8_t *)"", 0, (const uint8_t *)"v", 1};
    CHECK_RC(server_respond(req, 200, &empty_name, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header colon_name = {(const uint8_t *)"a:b", 3, (const uint8_t *)"v", 1};
    CHECK_RC(server_respond(req, 200, &colon_name, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header crlf_val = {(const uint8_t *)"x-a", 3, (const uint8_t *)"1\r\nx-b: 2", 9};
    CHECK_RC(server_respond(req, 200, &crlf_val, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header nul_val = {(const uint8_t *)"x-a", 3, (const uint8_t *)"a\0b", 3};
    CHECK_RC(server_respond(req, 200, &nul_val, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header ok_hdr = {(const uint8_t *)"x-ok", 4, (const uint8_t *)"fine", 4};
    /* absurd sizes are rejected, not read */
    CHECK_RC(server_respond(req, 200, &ok_hdr, SIZE_MAX, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_header huge_name = {(const uint8_t *)"x-ok", SIZE_MAX, (const uint8_t *)"v", 1};
    CHECK_RC(server_respond(req, 200, &huge_name, 1, b, 1), SERVER_ERR_INVALID_ARGUMENT);
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 42, NULL, 0, &s), SERVER_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_RC(server_respond_stream(req, 200, &bad_name, 1, &s), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond_stream(req, 200, &ok_hdr, SIZE_MAX, &s), SERVER_ERR_INVALID_ARGUMENT);
    /* still answerable */
    CHECK_RC(server_respond(req, 299, &ok_hdr, 1, (const uint8_t *)"still fine", 10), SERVER_OK);
    server_request_free(req);
}

void test_invalid_status_and_headers(void) {
    uint16_t port = start_local_with(invalid_handler);
    http_resp r;
    CHECK(http_get(port, "/", &r) == 0);
    CHECK_INT(r.status, 299);
    CHECK_STR(http_header(&r, "x-ok"), "fine");
    CHECK(http_header(&r, "x-b") == NULL);
    CHECK_STR((const char *)r.body, "still fine");
    http_resp_free(&r);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- lifecycle calls from inside a handler ------------------------------------------------ */

static atomic_int inner_rc = -1;
static void shutdown_inside_handler(void *ud, struct server_request *req) {
    (void)ud;
    inner_rc = server_shutdown(10000);
    CHECK_RC(inner_rc, SERVER_DRAINING);
    /* a second call from a handler: still not blocking */
    CHECK_RC(server_shutdown(10000), SERVER_DRAINING);
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"bye", 3), SERVER_OK);
    server_request_free(req);
}

void test_shutdown_inside_handler(void) {
    uint16_t port = start_local_with(shutdown_inside_handler);
    CHECK_GET(port, "/", 200, "bye");
    CHECK_RC(inner_rc, SERVER_DRAINING);
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
}

static void wait_inside_handler(void *ud, struct server_request *req) {
    (void)ud;
    CHECK_RC(server_wait(), SERVER_ERR_WRONG_THREAD);
    CHECK_INT(server_last_error_code(), SERVER_ERR_WRONG_THREAD);
    CHECK(server_last_error()[0] != '\0');
    CHECK_RC(server_wait_timeout(0), SERVER_ERR_WRONG_THREAD);
    CHECK_RC(server_wait_timeout(100), SERVER_ERR_WRONG_THREAD);
    struct server_options o;
    opts_local(&o);
    CHECK_RC(server_start(&o), SERVER_ERR_ALREADY_RUNNING);
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"ok", 2), SERVER_OK);
    server_request_free(req);
}

void test_wait_inside_handler_wrong_thread(void) {
    uint16_t port = start_local_with(wait_inside_handler);
    CHECK_GET(port, "/", 200, "ok");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- drain -------------------------------------------------------------------------------- */

void test_drain_completes_slow_request(void) {
    uint16_t port = start_local_with(th_handler);
    async_req a;
    ASYNC_ENTERED(&a, port, "/sleep?ms=400", 1);
    CHECK_RC(server_shutdown(20000), SERVER_OK);
    async_join(&a);
    CHECK(a.rc == 0);
    CHECK_INT(a.resp.status, 200);
    CHECK_STR((const char *)a.resp.body, "slept 400");
    CHECK(http_header(&a.resp, "connection") && strcasecmp(http_header(&a.resp, "connection"), "close") == 0);
    async_free(&a);
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
}

/* Idle keep-alive and silent connections close at once; new connections are refused; the
 * in-flight request finishes with Connection: close; the drain then ends gracefully. */
void test_drain_semantics(void) {
    uint16_t port = start_local_with(th_handler);

    int idle = CONNECT_WARM(port);
    int silent = tcp_connect(port);
    REQUIRE(silent >= 0);
    int half = tcp_connect(port);
    REQUIRE(half >= 0);
    CHECK(send_all(half, "GET / HTTP/1.1\r\nHo", 18) == 0);

    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);

    shutdown_call sc;
    int64_t t0 = now_ms();
    shutdown_async(&sc, NULL, 30000);
    CHECK(wait_refused(port, 10000));
    char buf[16];
    CHECK(recv(idle, buf, sizeof buf, 0) == 0);   /* idle keep-alive closed */
    CHECK(recv(silent, buf, sizeof buf, 0) == 0); /* never sent a byte: closed */
    ssize_t hn;
    while ((hn = recv(half, buf, sizeof buf, 0)) > 0) { /* half-sent head: maybe a 4xx, */
    }
    CHECK(hn == 0); /* then closed (not left to the 15 s client timeout) */
    close(idle);
    close(silent);
    close(half);
    CHECK(!sc.done); /* the drain waits for the in-flight request */
    struct server_stats st = SERVER_STATS_INIT;
    if (server_get_stats(&st) == SERVER_OK) CHECK_INT(st.requests_active, 1);

    event_signal(&th_release);
    async_join(&a);
    CHECK(a.rc == 0);
    CHECK_INT(a.resp.status, 200);
    CHECK_STR((const char *)a.resp.body, "released");
    const char *conn = http_header(&a.resp, "connection");
    CHECK(conn && strcasecmp(conn, "close") == 0);
    async_free(&a);
    CHECK_RC(shutdown_join(&sc), SERVER_OK);
    CHECK(event_wait_n(&th_block_done, 1, 10000));
    CHECK_RC(th_block_rc, SERVER_OK);
    CHECK_INT(th_block_cancelled, 0);
    note("graceful drain took %lld ms", (long long)(sc.returned_at - t0));
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
    CHECK_RC(server_shutdown(1000), SERVER_OK); /* idempotent */
}

void test_drain_deadline_forced(void) {
    uint16_t port = start_local_with(th_handler);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    int64_t t0 = now_ms();
    CHECK_RC(server_shutdown(300), SERVER_ERR_FORCED);
    int64_t took = now_ms() - t0;
    CHECK(took >= 250); /* the deadline is not cut short */
    CHECK(took < 15000); /* forced: does not wait for the blocked handler */
    CHECK(server_last_error()[0] != '\0');
    CHECK_CUT(&a); /* the client did not get "released" */
    RELEASE_BLOCKED(1);
    CHECK_INT(th_block_cancelled, 1);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK_STOPPED(port, 1, SERVER_CAUSE_FORCED_DEADLINE);
    CHECK(server_last_error()[0] != '\0');
    CHECK_RC(server_shutdown(1000), SERVER_ERR_FORCED); /* same result later */
}

/* A handler that keeps the request and never answers: the drain hits the deadline; the request
 * outlives the server and is still safe to query, answer (CLOSED) and free. */
void test_handler_never_answers(void) {
    atomic_int drops = 0;
    struct server_options o;
    opts_local(&o);
    o.userdata = &drops;
    o.userdata_drop = drop_count;
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/stash", 1);
    CHECK_RC(server_shutdown(200), SERVER_ERR_FORCED);
    async_join(&a);
    CHECK(a.rc != 0 || a.resp.status == 500 || a.resp.status == -1);
    CHECK(a.resp.status != 200);
    async_free(&a);
    CHECK_RC(server_wait(), 1);
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_FORCED_DEADLINE);
    CHECK_INT(wait_count(&drops, 1, 10000), 1);
    struct server_request *req = th_stash;
    REQUIRE(req != NULL);
    CHECK_INT(server_request_cancelled(req), 1);
    CHECK_STR(server_request_path(req), "/stash");
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"late", 4), SERVER_ERR_CLOSED);
    server_request_free(req);
    CHECK(port_bindable(port));
}

/* ---- restart, userdata_drop --------------------------------------------------------------- */

void test_restart_cycles_same_port(void) {
    uint16_t port = 0;
    static atomic_int drop_counts[6];
    for (int i = 0; i < 6; i++) {
        atomic_int *drops = &drop_counts[i];
        struct server_options o;
        opts_local(&o);
        char addr[32];
        if (i > 0) { /* the port of the previous cycle is really free again */
            snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
            o.addr = addr;
        }
        if (i % 2) o.handler = NULL;
        o.userdata = drops;
        o.userdata_drop = drop_count;
        uint16_t p = start_or_die(&o);
        if (i > 0) CHECK_INT(p, port);
        port = p;
        /* leave TIME_WAIT connections behind on purpose */
        for (int k = 0; k < 3; k++) CHECK_GET(port, "/", 200, "OK");
        CHECK_RC(server_shutdown(5000), SERVER_OK);
        CHECK_RC(server_wait(), 0);
        CHECK_INT(wait_count(drops, 1, 10000), 1);
        CHECK(port_refuses(port));
    }
    settle_threads(10000);
    for (int i = 0; i < 6; i++) CHECK_INT(atomic_load(&drop_counts[i]), 1); /* exactly once */
}

void test_start_after_shutdown_without_wait(void) {
    struct server_options o;
    opts_local(&o);
    uint16_t port = start_or_die(&o);
    CHECK_RC(server_shutdown(5000), SERVER_OK);
    uint16_t port2 = start_or_die(&o); /* no server_wait in between */
    CHECK_GET(port2, "/", 200, "OK");
    CHECK(port_refuses(port) || port == port2);
    stop_and_check(port2, 5000, SERVER_OK, 0);
}

void test_userdata_drop_once(void) {
    /* a normal run: not while serving, exactly once after the stop */
    atomic_int drops = 0;
    struct server_options o;
    opts_local(&o);
    o.userdata = &drops;
    o.userdata_drop = drop_count;
    uint16_t port = start_or_die(&o);
    CHECK_GET(port, "/", 200, "OK");
    CHECK_INT(atomic_load(&drops), 0);
    stop_and_check(port, 5000, SERVER_OK, 0);
    CHECK_INT(wait_count(&drops, 1, 10000), 1);

    /* start fails after reading the options: dropped exactly once, by the time wait returns */
    uint16_t busy_port = 0;
    int busy = listen_any(&busy_port);
    REQUIRE(busy >= 0);
    char busy_addr[32];
    snprintf(busy_addr, sizeof busy_addr, "127.0.0.1:%u", busy_port);
    struct {
        const char *what;
        const char *addr;
        uint32_t signals;
        int want;
    } cases[] = {
        {"address in use", busy_addr, SERVER_SIGNALS_HOST, SERVER_ERR_ADDR_IN_USE},
        {"invalid address", "nonsense", SERVER_SIGNALS_HOST, SERVER_ERR_INVALID_ADDRESS},
        {"bad signals value", "127.0.0.1:0", 7, SERVER_ERR_INVALID_ARGUMENT},
    };
    static atomic_int fail_drops[3];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        atomic_int *d = &fail_drops[i];
        opts_local(&o);
        o.addr = cases[i].addr;
        o.signals = cases[i].signals;
        o.userdata = d;
        o.userdata_drop = drop_count;
        CHECK_RC(server_start(&o), cases[i].want);
        if (wait_count(d, 1, 10000) != 1)
            check_fail(__FILE__, __LINE__, "%s: userdata_drop called %d times, want 1", cases[i].what,
                       atomic_load(d));
    }
    close(busy);

    /* no handler but a drop function: the userdata is released once */
    atomic_int d2 = 0;
    opts_local(&o);
    o.handler = NULL;
    o.userdata = &d2;
    o.userdata_drop = drop_count;
    port = start_or_die(&o);
    stop_and_check(port, 5000, SERVER_OK, 0);
    CHECK_INT(wait_count(&d2, 1, 10000), 1);

    /* failures before the options are read must not call it twice */
    atomic_int d3 = 0;
    opts_local(&o);
    o.version = 999;
    o.userdata = &d3;
    o.userdata_drop = drop_count;
    CHECK_RC(server_start(&o), SERVER_ERR_VERSION);
    CHECK(atomic_load(&d3) <= 1);
    if (atomic_load(&d3) == 0) note("SERVER_ERR_VERSION: userdata_drop not called (options unread)");
    /* nothing arrives late, twice */
    settle_threads(10000);
    CHECK_INT(atomic_load(&drops), 1);
    CHECK_INT(atomic_load(&d2), 1);
    for (int i = 0; i < 3; i++) CHECK_INT(atomic_load(&fail_drops[i]), 1);
}

/* ---- absurd lengths (KB in tests.def: these abort the process today) ---------------------- */

/* No C object can be larger than PTRDIFF_MAX, so a larger length is a caller bug the library can
 * see; like n_headers = SIZE_MAX it must be rejected with SERVER_ERR_INVALID_ARGUMENT, not
 * trusted (today: Rust aborts the whole host process trying to copy SIZE_MAX bytes). */
static void absurd_respond_handler(void *ud, struct server_request *req) {
    (void)ud;
    const uint8_t *b = (const uint8_t *)"x";
    CHECK_RC(server_respond(req, 200, NULL, 0, b, SIZE_MAX), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond(req, 200, NULL, 0, b, (size_t)PTRDIFF_MAX + 1), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"ok", 2), SERVER_OK);
    server_request_free(req);
}

void test_absurd_body_len_respond(void) {
    uint16_t port = start_local_with(absurd_respond_handler);
    CHECK_GET(port, "/", 200, "ok");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

static void absurd_stream_handler(void *ud, struct server_request *req) {
    (void)ud;
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 200, NULL, 0, &s), SERVER_OK);
    server_request_free(req);
    CHECK_RC(server_stream_write(s, (const uint8_t *)"x", SIZE_MAX), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_stream_write(s, (const uint8_t *)"ok", 2), SERVER_OK);
    server_stream_free(s);
}

void test_absurd_len_stream_write(void) {
    uint16_t port = start_local_with(absurd_stream_handler);
    CHECK_GET(port, "/", 200, "ok");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- more drain edges --------------------------------------------------------------------- */

static bool cancelled_pred(void *arg) { return server_request_cancelled(arg) == 1; }

/* The client goes away before the answer: the host can see it and the answer is refused. */
void test_request_cancelled_when_client_leaves(void) {
    uint16_t port = start_local_with(th_handler);
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    const char *req = "GET /stash HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(send_all(fd, req, strlen(req)) == 0);
    REQUIRE(event_wait_n(&th_entered, 1, 10000));
    struct server_request *r = th_stash;
    REQUIRE(r != NULL);
    CHECK_INT(server_request_cancelled(r), 0);
    close(fd);
    CHECK(wait_until(cancelled_pred, r, 10000));
    CHECK_RC(server_respond(r, 200, NULL, 0, (const uint8_t *)"late", 4), SERVER_ERR_CLOSED);
    server_request_free(r);
    /* the server is unaffected; the drain has nothing left to wait for */
    CHECK_GET(port, "/", 200, "OK");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* shutdown(0) closes in-flight connections at once; SERVER_TIMEOUT_INFINITE waits for them. */
void test_shutdown_zero_and_infinite(void) {
    struct server_options o;
    opts_local(&o);
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    CHECK_RC(server_shutdown(0), SERVER_ERR_FORCED);
    CHECK_CUT(&a);
    RELEASE_BLOCKED(1);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK_STOPPED(port, 1, SERVER_CAUSE_FORCED_DEADLINE);

    th_reset();
    port = start_or_die(&o);
    ASYNC_ENTERED(&a, port, "/sleep?ms=700", 1);
    CHECK_RC(server_shutdown(SERVER_TIMEOUT_INFINITE), SERVER_OK);
    CHECK_ANSWERED(&a, 200, "slept 700");
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
}

/* A later shutdown keeps the earlier deadline ("a drain already under way keeps the earlier
 * deadline"): a long second call cannot extend a short first one. */
void test_second_shutdown_keeps_deadline(void) {
    uint16_t port = start_local_with(th_handler);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    shutdown_call first;
    int64_t t0 = now_ms();
    shutdown_async(&first, NULL, 400);
    CHECK(wait_refused(port, 10000));
    CHECK_RC(server_shutdown(60000), SERVER_ERR_FORCED);
    CHECK(now_ms() - t0 < 20000);
    CHECK_RC(shutdown_join(&first), SERVER_ERR_FORCED);
    CHECK_CUT(&a);
    RELEASE_BLOCKED(1);
    CHECK_RC(server_wait(), 1);
}

/* userdata_drop runs only after the last handler call returned, even when a forced stop left a
 * handler running in host code; a new server can start meanwhile. */
void test_userdata_drop_after_last_handler(void) {
    atomic_int drops = 0;
    struct server_options o;
    opts_local(&o);
    o.userdata = &drops;
    o.userdata_drop = drop_count;
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    CHECK_RC(server_shutdown(100), SERVER_ERR_FORCED);
    CHECK_RC(server_wait(), 1);
    CHECK_CUT(&a);
    CHECK_INT(atomic_load(&drops), 0); /* the handler is still running */

    /* a new server while the old handler is stuck */
    struct server_options o2;
    opts_local(&o2);
    o2.handler = NULL;
    uint16_t port2 = start_or_die(&o2);
    CHECK_GET(port2, "/", 200, "OK");
    CHECK_INT(atomic_load(&drops), 0);

    RELEASE_BLOCKED(1);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK_INT(wait_count(&drops, 1, 10000), 1);
    stop_and_check(port2, 5000, SERVER_OK, 0);
    settle_threads(10000);
    CHECK_INT(atomic_load(&drops), 1);
    CHECK(port_bindable(port));
}

/* inline_handler: the handler runs on the async worker; answering at once works. */
void test_inline_handler(void) {
    struct server_options o;
    opts_local(&o);
    o.inline_handler = true;
    uint16_t port = start_or_die(&o);
    for (int i = 0; i < 3; i++) CHECK_POST(port, "/echo", "inline", 6, 200, "inline");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* Idle and slow clients are cut by the configured timeouts, not held forever. */
void test_idle_and_header_timeouts(void) {
    struct server_options o;
    opts_local(&o);
    o.keepalive_idle_timeout_ms = 300;
    o.header_read_timeout_ms = 300;
    uint16_t port = start_or_die(&o);
    int idle = CONNECT_WARM(port);
    int slow = tcp_connect(port);
    REQUIRE(slow >= 0);
    CHECK(send_all(slow, "GET / HTTP/1.1\r\nHost", 20) == 0);
    int64_t t0 = now_ms();
    char buf[256];
    CHECK(recv(idle, buf, sizeof buf, 0) == 0); /* closed by the idle timeout */
    ssize_t n;
    while ((n = recv(slow, buf, sizeof buf, 0)) > 0) { /* maybe a 408, then closed */
    }
    CHECK(n == 0);
    int64_t took = now_ms() - t0;
    CHECK(took < 10000); /* well before the 15 s client timeout */
    close(idle);
    close(slow);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* ---- what the library copies, and option limits seen from a client ------------------------- */

static void copy_handler(void *ud, struct server_request *req) {
    (void)ud;
    char body[32] = "original body";
    char name[16] = "x-copied";
    char value[16] = "original";
    struct server_header h = {(const uint8_t *)name, strlen(name), (const uint8_t *)value, strlen(value)};
    CHECK_RC(server_respond(req, 200, &h, 1, (const uint8_t *)body, strlen(body)), SERVER_OK);
    memset(body, 'X', sizeof body - 1); /* the answer was copied: scribbling changes nothing */
    memset(name, 'Y', sizeof name - 1);
    memset(value, 'Z', sizeof value - 1);
    /* request data the host reads: non-ASCII header bytes pass through */
    const uint8_t *v = NULL;
    size_t vl = 0;
    CHECK_RC(server_request_header(req, "x-bin", &v, &vl), SERVER_OK);
    CHECK(vl == 4 && memcmp(v, "\xe9t\xe9!", 4) == 0);
    server_request_free(req);
}

void test_respond_and_options_are_copied(void) {
    struct server_options *o = malloc(sizeof *o);
    opts_local(o);
    char *addr = strdup("127.0.0.1:0");
    o->addr = addr;
    o->handler = copy_handler;
    uint16_t port = start_or_die(o);
    memset(addr, 0, strlen(addr)); /* ASan catches any later read of these */
    free(addr);
    memset(o, 0, sizeof *o);
    free(o);
    char buf[64];
    CHECK_RC(server_local_addr(buf, sizeof buf, NULL), SERVER_OK);
    const char *raw = "GET / HTTP/1.1\r\nHost: x\r\nX-Bin: \xe9t\xe9!\r\nConnection: close\r\n\r\n";
    http_resp r;
    CHECK(http_exchange(port, raw, strlen(raw), &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(http_header(&r, "x-copied"), "original");
    CHECK_STR((const char *)r.body, "original body");
    http_resp_free(&r);
    /* drained but not yet waited (server_shutdown would wait itself): the port is still
     * reported until server_wait */
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_OK);
    CHECK(wait_refused(port, 10000));
    CHECK_INT(server_local_port(), port);
    CHECK_RC(server_wait(), 0);
    CHECK_INT(server_local_port(), 0);
}

void test_chunked_request_body(void) {
    uint16_t port = start_local_with(th_handler);
    const char *raw = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                      "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n";
    http_resp r;
    CHECK(http_exchange(port, raw, strlen(raw), &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR((const char *)r.body, "hello world");
    http_resp_free(&r);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* max_connections = 1: a second client waits in the backlog until the first connection goes. */
void test_max_connections(void) {
    struct server_options o;
    opts_local(&o);
    o.max_connections = 1;
    uint16_t port = start_or_die(&o);
    int first = CONNECT_WARM(port);
    async_req a;
    async_get(&a, port, "/");
    sleep_ms(300);
    CHECK(a.done_at == 0); /* still waiting: only one connection at a time */
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_get_stats(&st), SERVER_OK);
    CHECK_INT(st.connections_active, 1);
    close(first);
    CHECK_ANSWERED(&a, 200, "OK");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* handler_threads = 1: handlers run one at a time. */
void test_handler_threads_limit(void) {
    struct server_options o;
    opts_local(&o);
    o.handler_threads = 1;
    uint16_t port = start_or_die(&o);
    async_req a, b;
    ASYNC_ENTERED(&a, port, "/block", 1);
    async_get(&b, port, "/block");
    CHECK(!event_wait_n(&th_entered, 2, 300)); /* the only handler thread is busy */
    event_signal(&th_release);                 /* releases both, one after the other */
    CHECK_ANSWERED(&a, 200, "released");
    CHECK_ANSWERED(&b, 200, "released");
    CHECK_INT(event_count(&th_entered), 2);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* One event loop (worker_threads = 1) and the default dispatch: handlers that block do not
 * stall the other connections. Each blocked handler's worker is handed over to another thread,
 * so all eight are inside the handler at once and a plain GET is answered meanwhile. */
void test_blocking_handlers_do_not_stall_worker(void) {
    struct server_options o;
    opts_local(&o);
    o.worker_threads = 1;
    uint16_t port = start_or_die(&o);
    enum { N = 8 };
    async_req blocked[N];
    for (int i = 0; i < N; i++) async_get(&blocked[i], port, "/block");
    CHECK(event_wait_n(&th_entered, N, 10000)); /* all in host code at once */
    int64_t t0 = now_ms();
    CHECK_GET(port, "/", 200, "OK");
    int64_t took = now_ms() - t0;
    note("GET / answered in %lld ms while %d handlers block the only worker's thread(s)", (long long)took, N);
    CHECK(took < 1000);
    for (int i = 0; i < N; i++) CHECK(blocked[i].done_at == 0); /* still blocked */
    event_signal(&th_release);
    for (int i = 0; i < N; i++) CHECK_ANSWERED(&blocked[i], 200, "released");
    stop_and_check(port, 5000, SERVER_OK, 0);
}

/* One worker, two handler slots, six blocking requests: two are in the handler and four wait
 * in the worker's queue for a slot when the drain begins. The drain must wait for all six and
 * every one must be answered by its handler (none dropped, none 500), then stop gracefully. */
void test_queued_calls_survive_the_drain(void) {
    struct server_options o;
    opts_local(&o);
    o.worker_threads = 1;
    o.handler_threads = 2;
    uint16_t port = start_or_die(&o);
    enum { N = 6 };
    async_req r[N];
    for (int i = 0; i < N; i++) async_get(&r[i], port, "/block");
    REQUIRE(event_wait_n(&th_entered, 2, 10000));
    /* All six requests reached the server (two in handlers, four queued for a slot). */
    struct server_stats st = SERVER_STATS_INIT;
    int64_t end = now_ms() + 10000;
    do {
        CHECK_RC(server_get_stats(&st), SERVER_OK);
    } while (st.requests_active < N && now_ms() < end && (sleep_ms(2), 1));
    CHECK_INT(st.requests_active, N);
    CHECK(!event_wait_n(&th_entered, 3, 200)); /* the slots are full */
    shutdown_call sc;
    shutdown_async(&sc, NULL, 30000);
    REQUIRE(wait_refused(port, 10000)); /* the drain has begun */
    CHECK(!sc.done);
    event_signal(&th_release);
    for (int i = 0; i < N; i++) CHECK_ANSWERED(&r[i], 200, "released");
    CHECK_RC(shutdown_join(&sc), SERVER_OK);
    CHECK_INT(event_count(&th_entered), N);
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
}

/* One worker whose threads are all stuck in handlers (each handed over to a fresh thread): a
 * deadline forces the stop, wait returns at once with 1, and the stuck threads are left behind
 * until their handlers return (CLOSED, cancelled); the host's userdata is dropped once, after
 * the last of them, and a new server can start meanwhile. */
void test_forced_stop_with_handed_over_workers(void) {
    atomic_int drops = 0;
    struct server_options o;
    opts_local(&o);
    o.worker_threads = 1;
    o.userdata = &drops;
    o.userdata_drop = drop_count;
    uint16_t port = start_or_die(&o);
    enum { N = 4 };
    async_req r[N];
    for (int i = 0; i < N; i++) async_get(&r[i], port, "/block");
    REQUIRE(event_wait_n(&th_entered, N, 10000));
    int64_t t0 = now_ms();
    CHECK_RC(server_shutdown(200), SERVER_ERR_FORCED);
    CHECK_RC(server_wait(), 1);
    CHECK(now_ms() - t0 < 5000); /* does not wait for the stuck handlers */
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_FORCED_DEADLINE);
    for (int i = 0; i < N; i++) CHECK_CUT(&r[i]);
    CHECK(port_bindable(port));
    /* Another server while the old one's threads are still stuck in its handlers. */
    struct server_options o2;
    opts_local(&o2);
    uint16_t port2 = start_or_die(&o2);
    CHECK_GET(port2, "/", 200, "OK");
    CHECK_INT(drops, 0); /* the stuck handlers still hold the userdata */
    RELEASE_BLOCKED(N);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK_INT(th_block_cancelled, 1);
    CHECK_INT(wait_count(&drops, 1, 10000), 1);
    stop_and_check(port2, 5000, SERVER_OK, 0);
    CHECK_INT(drops, 1);
}

/* A handler that answers and then keeps running (blocks): the client gets the answer while the
 * handler is still in host code. */
void test_answer_reaches_client_before_handler_returns(void) {
    struct server_options o;
    opts_local(&o);
    o.worker_threads = 1;
    uint16_t port = start_or_die(&o);
    async_req a;
    async_get(&a, port, "/answer-then-block");
    CHECK(event_wait_n(&th_entered, 1, 10000));
    int64_t end = now_ms() + 5000;
    while (a.done_at == 0 && now_ms() < end) sleep_ms(2);
    CHECK(a.done_at != 0);
    CHECK(event_count(&th_block_done) == 0); /* the handler has not returned */
    CHECK_ANSWERED(&a, 200, "early");
    RELEASE_BLOCKED(1);
    stop_and_check(port, 5000, SERVER_OK, 0);
}

static void absurd_value_handler(void *ud, struct server_request *req) {
    (void)ud;
    struct server_header h = {(const uint8_t *)"x-a", 3, (const uint8_t *)"v", SIZE_MAX};
    CHECK_RC(server_respond(req, 200, &h, 1, NULL, 0), SERVER_ERR_INVALID_ARGUMENT);
    struct server_stream *s = NULL;
    CHECK_RC(server_respond_stream(req, 200, &h, 1, &s), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_respond(req, 200, NULL, 0, (const uint8_t *)"ok", 2), SERVER_OK);
    server_request_free(req);
}

/* A header value_len of SIZE_MAX is read byte by byte today (SIGSEGV); name_len SIZE_MAX is
 * already rejected with INVALID_ARGUMENT (see invalid_status_and_headers). KB in tests.def. */
void test_absurd_header_value_len(void) {
    uint16_t port = start_local_with(absurd_value_handler);
    CHECK_GET(port, "/", 200, "ok");
    stop_and_check(port, 5000, SERVER_OK, 0);
}
