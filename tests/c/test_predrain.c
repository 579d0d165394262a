/* A drain that survives a load balancer: the pre-drain delay, the health paths, connection age
 * limits, the version-2 counters and the lifecycle events, through the C ABI. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Events, recorded in order. */
typedef struct {
    pthread_mutex_t mu;
    int n;
    server_event_kind kinds[8];
    char messages[8][256];
} event_log;

static void record_event(void *userdata, server_event_kind kind, const char *message) {
    event_log *log = userdata;
    pthread_mutex_lock(&log->mu);
    if (log->n < 8) {
        log->kinds[log->n] = kind;
        snprintf(log->messages[log->n], sizeof log->messages[0], "%s", message);
        log->n++;
    }
    pthread_mutex_unlock(&log->mu);
}

static bool closed_by_peer(int fd) {
    char b;
    return recv(fd, &b, 1, 0) == 0;
}

/* During the delay: the listener accepts, new connections are answered with Connection: close,
 * readiness says 503 and liveness 200, a keep-alive connection opened before is not cut and its
 * next answer closes it, an in-flight request spans the delay; after it new connections are
 * refused, and the stop is graceful within delay + drain. */
void test_predrain_delay_semantics(void) {
    static event_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct server_options o;
    opts_local(&o);
    o.drain_delay_ms = 700;
    o.readiness_path = "/readyz";
    o.liveness_path = "/livez";
    o.on_event = record_event;
    o.userdata = &log;
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);

    CHECK_GET(port, "/readyz", 200, "ready");
    CHECK_GET(port, "/livez", 200, "alive");
    http_resp r;

    int ka = tcp_connect(port); /* a keep-alive connection opened before the signal */
    REQUIRE(ka >= 0);
    CHECK(http_get_on(ka, "/", &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK(http_header(&r, "connection") == NULL);
    http_resp_free(&r);

    async_req stashed;
    ASYNC_ENTERED(&stashed, port, "/stash", 1);
    CHECK_INT(server_request_drain_requested(th_stash), 0);
    async_req inflight;
    ASYNC_ENTERED(&inflight, port, "/block", 2);

    CHECK_INT(server_instance_drain_requested(srv), 0);
    int64_t t0 = now_ms();
    shutdown_call sc;
    shutdown_async(&sc, srv, 5000);
    while (!server_instance_drain_requested(srv) && now_ms() - t0 < 5000) sleep_ms(1);
    CHECK_INT(server_instance_drain_requested(srv), 1);
    /* a handler holding a request (a long poll) sees it and answers early */
    CHECK_INT(server_request_drain_requested(th_stash), 1);
    CHECK_INT(server_request_drain_requested(NULL), 0);
    CHECK_RC(server_respond(th_stash, 200, NULL, 0, (const uint8_t *)"early", 5), SERVER_OK);
    server_request_free(th_stash);
    async_join(&stashed);
    CHECK_INT(stashed.resp.status, 200);
    CHECK_STR(http_header(&stashed.resp, "connection"), "close");
    async_free(&stashed);

    /* a new connection during the delay: accepted, answered, told to close */
    CHECK(http_exchange(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 27, &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(http_header(&r, "connection"), "close");
    http_resp_free(&r);
    CHECK(http_get(port, "/readyz", &r) == 0);
    CHECK_INT(r.status, 503);
    CHECK_STR((char *)r.body, "draining");
    CHECK_STR(http_header(&r, "connection"), "close");
    http_resp_free(&r);
    CHECK_GET(port, "/livez", 200, "alive");
    /* the connection opened before was not cut: its next answer closes it */
    CHECK(http_get_on(ka, "/", &r) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(http_header(&r, "connection"), "close");
    http_resp_free(&r);
    CHECK(closed_by_peer(ka));
    close(ka);
    CHECK(now_ms() - t0 < 600); /* all of that inside the delay */

    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_instance_get_stats(srv, &st), SERVER_OK);
    CHECK(st.requests_during_delay >= 4);
    CHECK(st.connections_drained >= 1);

    /* after the delay the listener closes */
    CHECK(wait_refused(port, 5000));
    int64_t refused_at = now_ms() - t0;
    CHECK(refused_at >= 650);
    CHECK_RC(server_instance_wait_timeout(srv, 0), SERVER_STILL_RUNNING); /* in flight */
    event_signal(&th_release);
    CHECK_ANSWERED(&inflight, 200, "released");
    CHECK_RC(shutdown_join(&sc), SERVER_OK);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_GRACEFUL_CALL);
    server_instance_free(srv);

    pthread_mutex_lock(&log.mu);
    CHECK_INT(log.n, 2);
    CHECK_INT(log.kinds[0], SERVER_EVENT_DRAIN_STARTED);
    CHECK(strstr(log.messages[0], "pre-drain delay 700 ms") != NULL);
    CHECK(strstr(log.messages[0], "deadline 5000 ms") != NULL);
    CHECK_INT(log.kinds[1], SERVER_EVENT_STOPPED);
    CHECK(strstr(log.messages[1], "stopped gracefully") != NULL);
    note("events: \"%s\" / \"%s\"", log.messages[0], log.messages[1]);
    pthread_mutex_unlock(&log.mu);
}

/* A second signal during the delay forces the stop at once; a shutdown with timeout 0 ends the
 * delay and stops at once; the delay does not apply twice. */
void test_predrain_second_signal_and_zero_timeout(void) {
    struct server_options o;
    opts_local(&o);
    o.drain_delay_ms = 20000;
    server_instance *srv = instance_start_or_die(&o);
    int64_t t0 = now_ms();
    CHECK_RC(server_instance_notify_signal(srv, SIGTERM), SERVER_OK);
    CHECK_RC(server_instance_wait_timeout(srv, 200), SERVER_STILL_RUNNING); /* in the delay */
    CHECK(!port_refuses(server_instance_local_port(srv)));
    CHECK_RC(server_instance_notify_signal(srv, SIGTERM), SERVER_OK);
    CHECK_RC(server_instance_wait(srv), 1);
    CHECK(now_ms() - t0 < 5000);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_FORCED_SECOND_SIGNAL);
    server_instance_free(srv);

    srv = instance_start_or_die(&o);
    t0 = now_ms();
    CHECK_RC(server_instance_shutdown(srv, 0), SERVER_OK); /* nothing open: graceful */
    CHECK(now_ms() - t0 < 5000);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_GRACEFUL_CALL);
    server_instance_free(srv);

    /* a signal-started delay, then a shutdown call with a deadline: waits out the delay once */
    o.drain_delay_ms = 300;
    srv = instance_start_or_die(&o);
    t0 = now_ms();
    CHECK_RC(server_instance_notify_signal(srv, SIGINT), SERVER_OK);
    sleep_ms(100);
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    int64_t took = now_ms() - t0;
    CHECK(took >= 280 && took < 3000);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_GRACEFUL_SIGNAL);
    server_instance_free(srv);
}

/* The drain deadline counts from the end of the delay. */
void test_predrain_deadline_after_delay(void) {
    struct server_options o;
    opts_local(&o);
    o.drain_delay_ms = 400;
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    int64_t t0 = now_ms();
    CHECK_RC(server_instance_shutdown(srv, 300), SERVER_ERR_FORCED);
    int64_t took = now_ms() - t0;
    note("delay 400 ms + deadline 300 ms: forced after %lld ms", (long long)took);
    CHECK(took >= 650 && took < 3000);
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_instance_get_stats(srv, &st), SERVER_OK);
    CHECK_INT(st.connections_cut, 1);
    CHECK_CUT(&a);
    event_signal(&th_release);
    server_instance_free(srv);
}

/* max_requests_per_connection and max_connection_age: the answer past the limit closes the
 * connection. */
void test_connection_age_limits(void) {
    struct server_options o;
    opts_local(&o);
    o.max_requests_per_connection = 3;
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    int fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    http_resp r;
    for (int i = 1; i <= 3; i++) {
        CHECK(http_get_on(fd, "/", &r) == 0);
        CHECK_INT(r.status, 200);
        const char *c = http_header(&r, "connection");
        if (i < 3)
            CHECK(c == NULL);
        else
            CHECK_STR(c, "close");
        http_resp_free(&r);
    }
    CHECK(closed_by_peer(fd));
    close(fd);
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    server_instance_free(srv);

    opts_local(&o);
    o.max_connection_age_ms = 300;
    srv = instance_start_or_die(&o);
    port = server_instance_local_port(srv);
    fd = tcp_connect(port);
    REQUIRE(fd >= 0);
    CHECK(http_get_on(fd, "/", &r) == 0);
    CHECK(http_header(&r, "connection") == NULL);
    http_resp_free(&r);
    sleep_ms(400);
    CHECK(http_get_on(fd, "/", &r) == 0); /* not cut while idle: answered, then closed */
    CHECK_INT(r.status, 200);
    CHECK_STR(http_header(&r, "connection"), "close");
    http_resp_free(&r);
    CHECK(closed_by_peer(fd));
    close(fd);
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    server_instance_free(srv);
}

static bool three_active(void *arg) {
    struct server_stats st = SERVER_STATS_INIT;
    return server_instance_get_stats((server_instance *)arg, &st) == SERVER_OK &&
           st.connections_active == 3;
}

/* Counters of version 2: idle connections now, connections the drain closed. */
void test_stats_v2_idle_and_drained(void) {
    struct server_options o;
    opts_local(&o);
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    int fds[3];
    http_resp r;
    for (int i = 0; i < 3; i++) {
        fds[i] = tcp_connect(port);
        REQUIRE(fds[i] >= 0);
        CHECK(http_get_on(fds[i], "/", &r) == 0);
        http_resp_free(&r);
    }
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_instance_get_stats(srv, &st), SERVER_OK);
    CHECK_INT(st.connections_active, 3);
    CHECK_INT(st.connections_idle, 3);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    CHECK_RC(server_instance_get_stats(srv, &st), SERVER_OK);
    CHECK_INT(st.connections_active, 4);
    CHECK_INT(st.connections_idle, 3);
    event_signal(&th_release);
    CHECK_ANSWERED(&a, 200, "released");
    /* The client has its answer; the server may still be closing that connection
     * (Connection: close). Once it is gone, only the three idle ones are left to drain. */
    CHECK(wait_until(three_active, srv, 5000));
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    CHECK_RC(server_instance_get_stats(srv, &st), SERVER_OK);
    CHECK_INT(st.connections_drained, 3); /* the idle ones, closed by the drain */
    CHECK_INT(st.connections_cut, 0);
    for (int i = 0; i < 3; i++) {
        CHECK(closed_by_peer(fds[i]));
        close(fds[i]);
    }
    server_instance_free(srv);
}

/* Bad health paths are refused at start, with a message; other methods get 405. */
void test_health_paths_validation(void) {
    struct server_options o;
    opts_local(&o);
    server_instance *srv = NULL;
    o.readiness_path = "readyz";
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(server_last_error(), "readiness_path") != NULL);
    o.readiness_path = "/same";
    o.liveness_path = "/same";
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_INVALID_ARGUMENT);
    o.readiness_path = "/ready z";
    o.liveness_path = "";
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_INVALID_ARGUMENT);
    CHECK(srv == NULL);
    o.readiness_path = "/readyz";
    srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    http_resp r;
    CHECK(http_post(port, "/readyz", "x", 1, &r) == 0);
    CHECK_INT(r.status, 405);
    CHECK_STR(http_header(&r, "allow"), "GET, HEAD");
    http_resp_free(&r);
    CHECK_GET(port, "/livez", 404, "not found\n"); /* liveness off ("" is off): the handler's 404 */
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    server_instance_free(srv);
}
