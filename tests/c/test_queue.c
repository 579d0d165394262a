/*
 * The request queue (server_queue_*) and the packed request head (server_request_head): the
 * calls an event-loop host (graceserve.asgi) uses instead of a handler callback.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static bool readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static server_queue *new_queue(void) {
    server_queue *q = NULL;
    REQUIRE_RC(server_queue_new(&q), SERVER_OK);
    REQUIRE(q != NULL);
    return q;
}

/* A server whose handler is the queue: the library's own push, inline on the I/O threads. */
static uint16_t start_queued(server_queue *q) {
    struct server_options o;
    opts_local(&o);
    o.handler = server_queue_push;
    o.userdata = server_queue_retain(q);
    o.userdata_drop = server_queue_release;
    o.inline_handler = true;
    return start_or_die(&o);
}

/* Waits for the descriptor, then pops exactly `want` requests into out (at most 8). */
static size_t pop_n(server_queue *q, struct server_request **out, size_t want) {
    size_t got = 0;
    int64_t end = now_ms() + 10000;
    while (got < want && now_ms() < end) {
        if (!readable(server_queue_fd(q), 200)) continue;
        got += server_queue_pop(q, out + got, 8 - got);
    }
    return got;
}

/* The packed head: method, path, query, peer, version, body length, then name/value pairs. */
void test_queue_request_head(void) {
    server_queue *q = new_queue();
    uint16_t port = start_queued(q);
    async_req a;
    const char *raw =
        "POST /a%20b/c?x=1&y=%C3%A9 HTTP/1.1\r\nHost: h\r\nX-Rep: one\r\nX-Rep: two\r\n"
        "Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    async_start(&a, port, raw, strlen(raw));
    struct server_request *r[8];
    REQUIRE(pop_n(q, r, 1) == 1);
    const uint8_t *p = NULL;
    size_t n = 0;
    CHECK_RC(server_request_head(r[0], &p, &n), SERVER_OK);
    REQUIRE(p != NULL && n > 0 && p[n - 1] == 0);
    const char *fields[32];
    size_t nf = 0;
    for (size_t i = 0; i < n && nf < 32; i += strlen((const char *)p + i) + 1)
        fields[nf++] = (const char *)p + i;
    REQUIRE(nf >= 6);
    CHECK_STR(fields[0], "POST");
    CHECK_STR(fields[1], "/a%20b/c");
    CHECK_STR(fields[2], "x=1&y=%C3%A9");
    CHECK(strncmp(fields[3], "127.0.0.1:", 10) == 0);
    CHECK_STR(fields[4], "1.1");
    CHECK_STR(fields[5], "5");
    /* the same fields, in the same order, as server_request_header_at */
    CHECK_INT(nf - 6, 2 * server_request_header_count(r[0]));
    for (size_t i = 0; 6 + 2 * i + 1 < nf; i++) {
        const uint8_t *hn, *hv;
        size_t hnl, hvl;
        CHECK_RC(server_request_header_at(r[0], i, &hn, &hnl, &hv, &hvl), SERVER_OK);
        CHECK(strlen(fields[6 + 2 * i]) == hnl && memcmp(fields[6 + 2 * i], hn, hnl) == 0);
        CHECK(strlen(fields[7 + 2 * i]) == hvl && memcmp(fields[7 + 2 * i], hv, hvl) == 0);
    }
    int reps = 0;
    for (size_t i = 6; i + 1 < nf; i += 2)
        if (strcmp(fields[i], "x-rep") == 0) reps++;
    CHECK_INT(reps, 2);
    /* stable: a second call points at the same bytes */
    const uint8_t *p2 = NULL;
    size_t n2 = 0;
    CHECK_RC(server_request_head(r[0], &p2, &n2), SERVER_OK);
    CHECK(p2 == p && n2 == n);
    CHECK_RC(server_request_head(NULL, &p, &n), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_request_head(r[0], NULL, &n), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_respond(r[0], 204, NULL, 0, NULL, 0), SERVER_OK);
    server_request_free(r[0]);
    CHECK_ANSWERED(&a, 204, NULL);
    stop_and_check(port, 5000, SERVER_OK, 0);
    server_queue_release(q);
}

/* Requests wait in the queue until popped; answers wait until flushed; the descriptor is
 * readable exactly while requests wait. */
void test_queue_deliver_and_flush(void) {
    server_queue *q = new_queue();
    int fd = server_queue_fd(q);
    REQUIRE(fd >= 0);
    CHECK(!readable(fd, 0));
    uint16_t port = start_queued(q);
    async_req a, b;
    async_get(&a, port, "/one");
    async_get(&b, port, "/two");
    struct server_request *r[8];
    REQUIRE(pop_n(q, r, 2) == 2);
    CHECK(!readable(fd, 0));
    CHECK_INT(server_queue_pop(q, r + 2, 6), 0);
    /* packed headers: name\0value\0..., repeats kept */
    static const char hdrs[] = "content-type\0text/x-test\0x-rep\0a\0x-rep\0b\0";
    for (int i = 0; i < 2; i++) {
        const char *path = server_request_path(r[i]);
        char body[32];
        int len = snprintf(body, sizeof body, "answer %s", path);
        CHECK_RC(server_queue_respond(q, r[i], 201, (const uint8_t *)hdrs, sizeof hdrs - 1,
                                      (const uint8_t *)body, (size_t)len),
                 SERVER_OK); /* r[i] is freed by the call */
    }
    /* held until the flush */
    sleep_ms(300);
    CHECK_INT(atomic_load(&a.done_at), 0);
    CHECK_INT(atomic_load(&b.done_at), 0);
    server_queue_flush(q);
    async_join(&a);
    async_join(&b);
    CHECK_INT(a.resp.status, 201);
    CHECK_STR((const char *)a.resp.body, "answer /one");
    CHECK_STR((const char *)b.resp.body, "answer /two");
    CHECK_STR(http_header(&a.resp, "content-type"), "text/x-test");
    int reps = 0;
    for (size_t i = 0; i < a.resp.n_headers; i++)
        if (strcmp(a.resp.names[i], "x-rep") == 0) reps++;
    CHECK_INT(reps, 2);
    async_free(&a);
    async_free(&b);
    server_queue_flush(q); /* nothing held: nothing happens */
    stop_and_check(port, 5000, SERVER_OK, 0);
    server_queue_release(q);
}

/* Bad packed headers leave the request unanswered and still the caller's. */
void test_queue_respond_errors(void) {
    server_queue *q = new_queue();
    uint16_t port = start_queued(q);
    async_req a;
    async_get(&a, port, "/");
    struct server_request *r[8];
    REQUIRE(pop_n(q, r, 1) == 1);
    static const char odd[] = "x-a\0v\0x-b\0";
    static const char unterminated[] = "x-a\0v";
    static const char badname[] = "bad name\0v\0";
    CHECK_RC(server_queue_respond(q, r[0], 200, (const uint8_t *)odd, sizeof odd - 1, NULL, 0),
             SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_queue_respond(q, r[0], 200, (const uint8_t *)unterminated,
                                  sizeof unterminated - 1, NULL, 0),
             SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_queue_respond(q, r[0], 200, (const uint8_t *)badname, sizeof badname - 1,
                                  NULL, 0),
             SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_queue_respond(q, r[0], 42, NULL, 0, NULL, 0), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_queue_respond(q, r[0], 200, NULL, 3, NULL, 0), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_queue_respond(NULL, r[0], 200, NULL, 0, NULL, 0), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_queue_respond(q, NULL, 200, NULL, 0, NULL, 0), SERVER_ERR_NULL_PARAMETER);
    /* still answerable */
    CHECK_RC(server_queue_respond(q, r[0], 200, NULL, 0, (const uint8_t *)"ok", 2), SERVER_OK);
    server_queue_flush(q);
    CHECK_ANSWERED(&a, 200, "ok");
    /* NULLs elsewhere do nothing */
    CHECK_INT(server_queue_pop(NULL, r, 8), 0);
    CHECK_INT(server_queue_pop(q, NULL, 8), 0);
    CHECK_INT(server_queue_fd(NULL), -1);
    CHECK(server_queue_retain(NULL) == NULL);
    server_queue_flush(NULL);
    server_queue_close(NULL);
    server_queue_release(NULL);
    server_queue_push(NULL, NULL);
    CHECK_RC(server_queue_new(NULL), SERVER_ERR_NULL_PARAMETER);
    stop_and_check(port, 5000, SERVER_OK, 0);
    server_queue_release(q);
}

/* A client gone before the answer: SERVER_ERR_CLOSED, and the request is freed all the same. */
void test_queue_client_gone(void) {
    server_queue *q = new_queue();
    uint16_t port = start_queued(q);
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    const char *raw = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(send_all(fd, raw, strlen(raw)) == 0);
    struct server_request *r[8];
    REQUIRE(pop_n(q, r, 1) == 1);
    close(fd);
    int64_t end = now_ms() + 10000;
    while (!server_request_cancelled(r[0]) && now_ms() < end) sleep_ms(5);
    CHECK_INT(server_request_cancelled(r[0]), 1);
    CHECK_RC(server_queue_respond(q, r[0], 200, NULL, 0, NULL, 0), SERVER_ERR_CLOSED);
    stop_and_check(port, 5000, SERVER_OK, 0);
    server_queue_release(q);
}

/* A closed queue answers 503 to what waits in it and to every later request; the server's
 * reference goes with the server (userdata_drop), the last release frees the queue. */
void test_queue_close_answers_503(void) {
    server_queue *q = new_queue();
    uint16_t port = start_queued(q);
    async_req a;
    async_get(&a, port, "/waiting");
    REQUIRE(readable(server_queue_fd(q), 10000));
    server_queue_close(q);
    CHECK(!readable(server_queue_fd(q), 0));
    CHECK_ANSWERED(&a, 503, NULL);
    CHECK_GET(port, "/later", 503, NULL);
    server_queue_close(q); /* idempotent */
    stop_and_check(port, 5000, SERVER_OK, 0);
    server_queue_release(q);
}

/* Releasing the last reference while requests wait answers them 503 (nothing leaks, nothing
 * hangs); the server stops gracefully. */
void test_queue_release_with_waiting_requests(void) {
    server_queue *q = new_queue();
    uint16_t port = start_queued(q);
    async_req a;
    async_get(&a, port, "/waiting");
    REQUIRE(readable(server_queue_fd(q), 10000));
    server_queue_release(q); /* the server still holds its reference */
    sleep_ms(100);
    CHECK_INT(atomic_load(&a.done_at), 0);
    /* the drain waits for the queued request; the stop drops the server's reference, the
     * last one, which answers the request 503 */
    CHECK_RC(server_shutdown(300), SERVER_ERR_FORCED);
    CHECK_RC(server_wait(), 1);
    async_join(&a);
    CHECK(a.resp.status == 503 || a.resp.status == -1);
    async_free(&a);
}
