/* Several servers per process: the server_instance handle API beside the default server, signals
 * reaching every listening instance, options and stats that grow without breaking old callers,
 * server_instance_free on a running instance, and cycles of concurrent instances. */
#define _GNU_SOURCE
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* Three instances at once with different handlers, plus the default server beside them: each
 * answers with its own handler, draining one leaves the others serving, and causes and
 * statuses are per instance. */
void test_instances_three_at_once(void) {
    struct server_options o;
    opts_local(&o);
    server_instance *a = instance_start_or_die(&o); /* th_handler */
    o.handler = tag_handler;
    o.userdata = "B";
    server_instance *b = instance_start_or_die(&o);
    o.handler = NULL; /* built-in 200 OK */
    o.userdata = NULL;
    server_instance *c = instance_start_or_die(&o);
    uint16_t pa = server_instance_local_port(a), pb = server_instance_local_port(b),
             pc = server_instance_local_port(c);
    CHECK(pa != pb && pb != pc && pa != pc);

    /* the fixed names drive the default server, beside the instances */
    opts_local(&o);
    o.handler = tag_handler;
    o.userdata = "default";
    uint16_t pd = start_or_die(&o);
    CHECK_GET(pd, "/", 200, "default");

    CHECK_GET(pa, "/sleep?ms=1", 200, "slept 1");
    CHECK_GET(pb, "/anything", 200, "B");
    CHECK_GET(pc, "/", 200, "OK");
    char buf[64];
    size_t n = 0;
    CHECK_RC(server_instance_local_addr(b, buf, sizeof buf, &n), SERVER_OK);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", pb);
    CHECK_STR(buf, want);
    CHECK_INT(n, strlen(want));

    /* drain B while A, C and the default server serve; B's counters stay readable */
    CHECK_RC(server_instance_shutdown(b, 5000), SERVER_OK);
    CHECK_RC(server_instance_wait(b), 0);
    CHECK_INT(server_instance_stop_cause(b), SERVER_CAUSE_GRACEFUL_CALL);
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_instance_get_stats(b, &st), SERVER_OK);
    CHECK_INT(st.requests_total, 1);
    CHECK(port_refuses(pb));
    CHECK_INT(server_instance_local_port(b), pb); /* still readable after the stop */
    CHECK_INT(server_instance_stop_cause(a), SERVER_CAUSE_NONE);
    CHECK_INT(server_instance_stop_cause(c), SERVER_CAUSE_NONE);
    CHECK_GET(pa, "/", 200, "OK");
    CHECK_GET(pc, "/", 200, "OK");
    CHECK_GET(pd, "/", 200, "default");
    CHECK_RC(server_instance_wait_timeout(a, 0), SERVER_STILL_RUNNING);

    /* A overruns its deadline with a request in flight: forced, status 1, only A */
    async_req r;
    ASYNC_ENTERED(&r, pa, "/block", 2); /* after /sleep's */
    int64_t t0 = now_ms();
    CHECK_RC(server_instance_shutdown(a, 200), SERVER_ERR_FORCED);
    CHECK(now_ms() - t0 < 5000);
    CHECK_RC(server_instance_wait(a), 1);
    CHECK(strstr(server_last_error(), "deadline") != NULL);
    CHECK_INT(server_instance_stop_cause(a), SERVER_CAUSE_FORCED_DEADLINE);
    CHECK_CUT(&r);
    event_signal(&th_release);
    CHECK_GET(pc, "/", 200, "OK");
    CHECK_GET(pd, "/", 200, "default");

    /* the default server stops through its own names; C is untouched */
    stop_and_check(pd, 5000, SERVER_OK, 0);
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_GRACEFUL_CALL);
    CHECK_GET(pc, "/", 200, "OK");
    CHECK_RC(server_instance_shutdown(c, 5000), SERVER_OK);
    CHECK_RC(server_instance_wait(c), 0);

    server_instance_free(a);
    server_instance_free(b);
    server_instance_free(c);
    CHECK(port_bindable(pa) && port_bindable(pb) && port_bindable(pc));
}

static volatile sig_atomic_t custom_term;
static void custom_handler(int sig) {
    if (sig == SIGTERM) custom_term++;
}

/* One SIGTERM drains every instance started with SERVER_SIGNALS_LIBRARY (each with its own
 * deadline), a second forces those still draining; SERVER_SIGNALS_HOST instances are never
 * touched; the handlers stay while one listener runs and the previous action comes back when
 * the last one stops. */
void test_instances_one_sigterm_drains_all(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = custom_handler;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGTERM, &sa, &old) == 0);

    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_LIBRARY;
    o.signal_drain_timeout_ms = 30000;
    server_instance *busy = instance_start_or_die(&o); /* will hold a request */
    server_instance *idle = instance_start_or_die(&o);
    o.signals = SERVER_SIGNALS_HOST;
    o.handler = tag_handler;
    o.userdata = "host";
    server_instance *host = instance_start_or_die(&o);
    uint16_t pbusy = server_instance_local_port(busy), pidle = server_instance_local_port(idle),
             phost = server_instance_local_port(host);
    CHECK(current_handler(SIGTERM) != custom_handler); /* the library's, chaining ours */

    async_req r;
    ASYNC_ENTERED(&r, pbusy, "/block", 1);
    raise(SIGTERM);
    CHECK_INT(custom_term, 1); /* chained once, not once per instance */
    CHECK_RC(server_instance_wait(idle), 0);
    CHECK_INT(server_instance_stop_cause(idle), SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK(wait_refused(pbusy, 10000)); /* draining, not stopped */
    CHECK_RC(server_instance_wait_timeout(busy, 100), SERVER_STILL_RUNNING);
    CHECK_GET(phost, "/", 200, "host"); /* untouched */
    CHECK(current_handler(SIGTERM) != custom_handler); /* busy still listens */

    int64_t t0 = now_ms();
    raise(SIGTERM); /* second: forces busy at once, not at its 30 s deadline */
    CHECK_RC(server_instance_wait(busy), 1);
    CHECK(now_ms() - t0 < 10000);
    CHECK_INT(server_instance_stop_cause(busy), SERVER_CAUSE_FORCED_SECOND_SIGNAL);
    CHECK_INT(custom_term, 2);
    CHECK_CUT(&r);
    event_signal(&th_release);
    CHECK(current_handler(SIGTERM) == custom_handler); /* the last listener stopped */
    CHECK_GET(phost, "/", 200, "host");
    CHECK_INT(server_instance_stop_cause(host), SERVER_CAUSE_NONE);

    /* server_notify_signal reaches listening instances only; a host instance is reached
     * through its own handle */
    opts_local(&o);
    o.signals = SERVER_SIGNALS_LIBRARY;
    server_instance *l1 = instance_start_or_die(&o);
    server_instance *l2 = instance_start_or_die(&o);
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_OK);
    CHECK_RC(server_instance_wait(l1), 0);
    CHECK_RC(server_instance_wait(l2), 0);
    CHECK_INT(server_instance_stop_cause(l1), SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK_INT(server_instance_stop_cause(l2), SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_ERR_NOT_RUNNING); /* nobody listens */
    CHECK_GET(phost, "/", 200, "host");
    CHECK_RC(server_instance_notify_signal(host, 0), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_instance_notify_signal(NULL, SIGTERM), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_instance_notify_signal(host, SIGTERM), SERVER_OK);
    CHECK_RC(server_instance_wait(host), 0);
    CHECK_INT(server_instance_stop_cause(host), SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK(port_refuses(pbusy) && port_refuses(pidle) && port_refuses(phost));

    server_instance_free(busy);
    server_instance_free(idle);
    server_instance_free(host);
    server_instance_free(l1);
    server_instance_free(l2);
    CHECK(current_handler(SIGTERM) == custom_handler);
    sigaction(SIGTERM, &old, NULL);
}

/* Misuse and wrong order: NULL handles, a failed start, calls from the instance's own handler,
 * and a handler of one instance stopping another. */
static server_instance *_Atomic self_inst;
static server_instance *_Atomic other_inst;
static atomic_int self_shutdown_rc = -1, self_wait_rc = -1, other_shutdown_rc = -1;

static void self_handler(void *userdata, struct server_request *req) {
    (void)userdata;
    const char *path = server_request_path(req);
    if (strcmp(path, "/stop-other") == 0) {
        other_shutdown_rc = server_instance_shutdown(other_inst, 5000); /* blocks: fine */
    } else {
        self_wait_rc = server_instance_wait(self_inst);
        self_shutdown_rc = server_instance_shutdown(self_inst, 5000);
    }
    server_respond(req, 200, NULL, 0, (const uint8_t *)"done", 4);
    server_request_free(req);
}

void test_instances_misuse(void) {
    server_instance *srv = (server_instance *)(uintptr_t)1;
    CHECK_RC(server_instance_start(NULL, NULL), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_instance_shutdown(NULL, 0), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_instance_wait(NULL), SERVER_ERR_NULL_PARAMETER);
    CHECK_RC(server_instance_wait_timeout(NULL, 0), SERVER_ERR_NULL_PARAMETER);
    CHECK_INT(server_instance_local_port(NULL), 0);
    char buf[64];
    CHECK_RC(server_instance_local_addr(NULL, buf, sizeof buf, NULL), SERVER_ERR_NULL_PARAMETER);
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_instance_get_stats(NULL, &st), SERVER_ERR_NULL_PARAMETER);
    CHECK_INT(server_instance_stop_cause(NULL), SERVER_CAUSE_NONE);
    server_instance_free(NULL);

    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_GRACEFUL_SIGNAL), 0);
    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_GRACEFUL_CALL), 0);
    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_FORCED_DEADLINE), 1);
    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_BIND_FAILED), 1);
    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_INVALID_OPTIONS), 1);
    CHECK_INT(server_stop_cause_exit_status(SERVER_CAUSE_NONE), SERVER_ERR_NOT_RUNNING);
    CHECK_INT(server_stop_cause_exit_status(99), SERVER_ERR_INVALID_ARGUMENT);

    /* a failed start leaves *out NULL and says why */
    uint16_t taken;
    int lfd = listen_any(&taken);
    REQUIRE(lfd >= 0);
    struct server_options o;
    opts_local(&o);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", taken);
    o.addr = addr;
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_ADDR_IN_USE);
    CHECK(srv == NULL);
    CHECK(strstr(server_last_error(), addr) != NULL);
    CHECK_INT(server_last_error_cause(), SERVER_CAUSE_BIND_FAILED);
    close(lfd);
    o.version = 999;
    srv = (server_instance *)(uintptr_t)1;
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_VERSION);
    CHECK(srv == NULL);
    CHECK_INT(server_last_error_cause(), SERVER_CAUSE_INVALID_OPTIONS);
    CHECK_RC(server_instance_wait(NULL), SERVER_ERR_NULL_PARAMETER); /* not a start */
    CHECK_INT(server_last_error_cause(), SERVER_CAUSE_NONE);

    /* from its own handler: wait refuses, shutdown starts the drain and returns DRAINING; a
     * handler of another instance may stop this one and wait for it */
    opts_local(&o);
    o.handler = self_handler;
    server_instance *self = instance_start_or_die(&o);
    opts_local(&o);
    server_instance *other = instance_start_or_die(&o);
    self_inst = self;
    other_inst = other;
    uint16_t pself = server_instance_local_port(self);
    CHECK_GET(pself, "/stop-other", 200, "done");
    CHECK_RC(other_shutdown_rc, SERVER_OK);
    CHECK_INT(server_instance_stop_cause(other), SERVER_CAUSE_GRACEFUL_CALL);
    CHECK_GET(pself, "/self", 200, "done");
    CHECK_RC(self_wait_rc, SERVER_ERR_WRONG_THREAD);
    CHECK_RC(self_shutdown_rc, SERVER_DRAINING);
    CHECK_RC(server_instance_wait(self), 0);
    CHECK_INT(server_instance_stop_cause(self), SERVER_CAUSE_GRACEFUL_CALL);
    /* idempotent after the stop */
    CHECK_RC(server_instance_shutdown(self, 0), SERVER_OK);
    CHECK_RC(server_instance_wait(self), 0);
    server_instance_free(self);
    server_instance_free(other);
}

/* server_instance_free on a running instance forces the stop and waits, like MHD_stop_daemon;
 * from the instance's own handler it forces the stop without waiting for that handler. */
static server_instance *_Atomic free_me;
static atomic_int freed_in_handler;
static void free_self_handler(void *userdata, struct server_request *req) {
    (void)userdata;
    server_instance_free(free_me);
    freed_in_handler = 1;
    server_respond(req, 200, NULL, 0, NULL, 0); /* the stop was forced: CLOSED, ignored */
    server_request_free(req);
}

void test_instance_free_running(void) {
    static atomic_int drops;
    struct server_options o;
    opts_local(&o);
    o.userdata = &drops;
    o.userdata_drop = drop_count;
    o.signals = SERVER_SIGNALS_LIBRARY;
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    async_req r;
    ASYNC_ENTERED(&r, port, "/block", 1);
    int64_t t0 = now_ms();
    server_instance_free(srv); /* forced at once: the blocked request is cut */
    CHECK(now_ms() - t0 < 5000);
    CHECK(port_refuses(port));
    CHECK(port_bindable(port));
    CHECK_CUT(&r);
    CHECK(current_handler(SIGTERM) == SIG_DFL); /* its signal handlers are gone */
    RELEASE_BLOCKED(1);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK_INT(wait_count(&drops, 1, 10000), 1); /* once the stuck handler returned */

    /* from its own handler */
    static atomic_int drops2;
    opts_local(&o);
    o.handler = free_self_handler;
    o.userdata = &drops2;
    o.userdata_drop = drop_count;
    srv = instance_start_or_die(&o);
    free_me = srv;
    port = server_instance_local_port(srv);
    http_resp resp;
    http_get(port, "/", &resp); /* cut by the forced stop, or answered: either is fine */
    http_resp_free(&resp);
    CHECK(wait_refused(port, 10000));
    CHECK_INT(wait_count(&drops2, 1, 10000), 1);
    CHECK_INT(freed_in_handler, 1);
}

/* Options that can grow: a caller built against version 1 passes a struct of version 1's size;
 * init writes and start reads only those bytes. Guard bytes after the struct must survive, and
 * under ASan an exactly-sized heap block catches any read or write past it. Same for stats. */
void test_options_and_stats_versions_grow_safely(void) {
    const size_t v1 = offsetof(struct server_options, max_body_bytes) + sizeof(uint64_t);
    CHECK(v1 <= sizeof(struct server_options));
    unsigned char *guarded = malloc(v1 + 64);
    REQUIRE(guarded != NULL);
    memset(guarded, 0xA5, v1 + 64);
    CHECK_RC(server_options_init((struct server_options *)guarded, 1), SERVER_OK);
    for (size_t i = v1; i < v1 + 64; i++) {
        if (guarded[i] != 0xA5) {
            check_fail(__FILE__, __LINE__, "server_options_init(v1) wrote byte %zu past the v1 struct", i - v1);
            break;
        }
    }
    /* exactly v1 bytes on the heap, filled like an old caller would, then started */
    struct server_options full;
    opts_local(&full);
    full.version = 1;
    full.handler = tag_handler;
    full.userdata = "v1";
    unsigned char *exact = malloc(v1);
    REQUIRE(exact != NULL);
    memcpy(exact, &full, v1);
    server_instance *srv = NULL;
    REQUIRE_RC(server_instance_start(&srv, (const struct server_options *)exact), SERVER_OK);
    free(exact); /* copied during the start */
    CHECK_GET(server_instance_local_port(srv), "/", 200, "v1");

    const size_t s1 = offsetof(struct server_stats, requests_total) + sizeof(uint64_t);
    unsigned char *stats = malloc(s1 + 64);
    REQUIRE(stats != NULL);
    memset(stats, 0xA5, s1 + 64);
    uint32_t one = 1;
    memcpy(stats, &one, sizeof one);
    CHECK_RC(server_instance_get_stats(srv, (struct server_stats *)stats), SERVER_OK);
    for (size_t i = s1; i < s1 + 64; i++) {
        if (stats[i] != 0xA5) {
            check_fail(__FILE__, __LINE__, "get_stats(v1) wrote byte %zu past the v1 struct", i - s1);
            break;
        }
    }
    struct server_stats st;
    memcpy(&st, stats, s1);
    CHECK_INT(st.requests_total, 1);
    uint32_t bad = 0;
    memcpy(stats, &bad, sizeof bad);
    CHECK_RC(server_instance_get_stats(srv, (struct server_stats *)stats), SERVER_ERR_VERSION);
    bad = SERVER_STATS_VERSION + 1;
    memcpy(stats, &bad, sizeof bad);
    CHECK_RC(server_instance_get_stats(srv, (struct server_stats *)stats), SERVER_ERR_VERSION);

    /* newer-than-known and zero versions are refused without touching the struct */
    memset(guarded, 0xA5, v1 + 64);
    CHECK_RC(server_options_init((struct server_options *)guarded, SERVER_OPTIONS_VERSION + 1), SERVER_ERR_VERSION);
    CHECK_RC(server_options_init((struct server_options *)guarded, 0), SERVER_ERR_VERSION);
    CHECK_INT(guarded[0], 0xA5);

    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    server_instance_free(srv);
    free(stats);
    free(guarded);
}

/* Cycles of 4 instances started and stopped concurrently (one thread each), checking that
 * memory and descriptors stay flat: nothing per instance outlives its free. */
typedef struct {
    pthread_t th;
    int failures;
    char why[160];
} cycle_worker;

static void *cycle_one(void *arg) {
    cycle_worker *w = arg;
    struct server_options o;
    server_options_init(&o, SERVER_OPTIONS_VERSION);
    o.addr = "127.0.0.1:0";
    o.handler = tag_handler;
    o.userdata = "c";
    o.worker_threads = 1;
    o.signals = SERVER_SIGNALS_LIBRARY;
    server_instance *srv = NULL;
    int rc = server_instance_start(&srv, &o);
    if (rc != SERVER_OK) {
        w->failures++;
        snprintf(w->why, sizeof w->why, "start: %s", server_last_error());
        return NULL;
    }
    if (!http_get_is(server_instance_local_port(srv), "/", 200, "c", w->why, sizeof w->why))
        w->failures++;
    int s = server_instance_shutdown(srv, 5000);
    int x = server_instance_wait(srv);
    if (s != SERVER_OK || x != 0) {
        w->failures++;
        snprintf(w->why, sizeof w->why, "shutdown %d wait %d", s, x);
    }
    server_instance_free(srv);
    return NULL;
}

void test_instances_cycles_no_leaks(void) {
    int cycles = getenv("GS_CYCLES") ? atoi(getenv("GS_CYCLES")) : 1000;
    if (cycles < 60) cycles = 60;
    const int warmup = 30;
    long rss0 = 0;
    int fds0 = 0, bad = 0;
    int64_t t0 = now_ms();
    for (int i = 0; i < cycles && bad < 5; i++) {
        if (i == warmup) {
            CHECK(settle_threads(10000));
            rss0 = vm_rss_kb();
            fds0 = open_fd_count();
            t0 = now_ms();
        }
        cycle_worker w[4];
        memset(w, 0, sizeof w);
        for (int k = 0; k < 4; k++) REQUIRE(pthread_create(&w[k].th, NULL, cycle_one, &w[k]) == 0);
        for (int k = 0; k < 4; k++) {
            pthread_join(w[k].th, NULL);
            if (w[k].failures) {
                check_fail(__FILE__, __LINE__, "cycle %d instance %d: %s", i, k, w[k].why);
                bad++;
            }
        }
    }
    double ms_per_cycle = (double)(now_ms() - t0) / (cycles - warmup);
    CHECK(settle_threads(10000));
    int fds1 = open_fd_count();
    long rss1 = vm_rss_kb();
    note("%d cycles of 4 concurrent instances; after %d warm-up cycles: VmRSS %ld -> %ld kB, fds %d -> %d, %.2f ms/cycle",
         cycles, warmup, rss0, rss1, fds0, fds1, ms_per_cycle);
    CHECK_INT(fds1, fds0);
    CHECK(current_handler(SIGTERM) == SIG_DFL);
    if (!UNDER_ASAN) CHECK(rss1 - rss0 < 8 * 1024);
}

/* Many threads calling every reading and stopping call on the same instances at once while
 * requests flow: no crash, consistent answers, one outcome. */
typedef struct {
    server_instance *srv;
    atomic_int *violations;
    pthread_t th;
} hammer_arg;

static void *hammer(void *p) {
    hammer_arg *h = p;
    for (int i = 0; i < 200; i++) {
        struct server_stats st = SERVER_STATS_INIT;
        int rc = server_instance_get_stats(h->srv, &st);
        if (rc != SERVER_OK || st.requests_active > st.requests_total) atomic_fetch_add(h->violations, 1);
        char buf[64];
        if (server_instance_local_addr(h->srv, buf, sizeof buf, NULL) != SERVER_OK) atomic_fetch_add(h->violations, 1);
        int w = server_instance_wait_timeout(h->srv, 0);
        if (w != SERVER_STILL_RUNNING && w != 0) atomic_fetch_add(h->violations, 1);
        if (i == 150) {
            int s = server_instance_shutdown(h->srv, 5000);
            if (s != SERVER_OK) atomic_fetch_add(h->violations, 1);
        }
    }
    return NULL;
}

void test_instances_concurrent_calls(void) {
    struct server_options o;
    opts_local(&o);
    server_instance *srv[2] = {instance_start_or_die(&o), instance_start_or_die(&o)};
    atomic_int violations = 0;
    hammer_arg h[8];
    async_req reqs[8];
    for (int i = 0; i < 8; i++) async_get(&reqs[i], server_instance_local_port(srv[i % 2]), "/sleep?ms=20");
    for (int i = 0; i < 8; i++) {
        h[i].srv = srv[i % 2];
        h[i].violations = &violations;
        REQUIRE(pthread_create(&h[i].th, NULL, hammer, &h[i]) == 0);
    }
    for (int i = 0; i < 8; i++) pthread_join(h[i].th, NULL);
    for (int i = 0; i < 8; i++) {
        async_join(&reqs[i]);
        /* started before any shutdown: each finished (the drain waits for in-flight requests)
         * or was refused/closed before being read */
        async_free(&reqs[i]);
    }
    CHECK_INT(violations, 0);
    for (int i = 0; i < 2; i++) {
        CHECK_RC(server_instance_wait(srv[i]), 0);
        CHECK_INT(server_instance_stop_cause(srv[i]), SERVER_CAUSE_GRACEFUL_CALL);
        server_instance_free(srv[i]);
    }
}
