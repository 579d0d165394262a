/* Signals: host-owned (server_notify_signal) and library-owned (SIGINT/SIGTERM handlers). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static volatile sig_atomic_t host_term_seen, host_int_seen;
static volatile sig_atomic_t notify_rc_in_handler = -1;

/* A host-owned handler that forwards to the library (async-signal-safe path). */
static void host_forwarding_handler(int sig) {
    if (sig == SIGTERM) host_term_seen++;
    if (sig == SIGINT) host_int_seen++;
    notify_rc_in_handler = server_notify_signal(sig);
}

static void install(int sig, void (*fn)(int), struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(sig, &sa, old) == 0);
}

void test_notify_signal_misuse(void) {
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_ERR_NOT_RUNNING);
    CHECK_RC(server_notify_signal(0), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_notify_signal(-5), SERVER_ERR_INVALID_ARGUMENT);
    uint16_t port = start_local_with(th_handler);
    CHECK_RC(server_notify_signal(0), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_RC(server_wait_timeout(50), SERVER_STILL_RUNNING); /* still serving */
    stop_and_check(port, 5000, SERVER_OK, 0);
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_ERR_NOT_RUNNING);
}

/* SERVER_SIGNALS_HOST: the library leaves SIGTERM alone; the host's handler forwards it. */
void test_notify_signal_graceful(void) {
    struct sigaction old;
    install(SIGTERM, host_forwarding_handler, &old);
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_HOST;
    o.signal_drain_timeout_ms = 30000;
    uint16_t port = start_or_die(&o);
    CHECK(current_handler(SIGTERM) == host_forwarding_handler); /* untouched */

    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    raise(SIGTERM);
    CHECK_INT(host_term_seen, 1);
    CHECK_RC(notify_rc_in_handler, SERVER_OK);
    CHECK(wait_refused(port, 10000)); /* the drain started */
    CHECK_RC(server_wait_timeout(0), SERVER_STILL_RUNNING); /* waiting for the request */
    event_signal(&th_release);
    CHECK_ANSWERED(&a, 200, "released");
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK(current_handler(SIGTERM) == host_forwarding_handler);
    sigaction(SIGTERM, &old, NULL);
}

void test_notify_signal_second_forces(void) {
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_HOST;
    o.signal_drain_timeout_ms = 30000;
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    CHECK_RC(server_notify_signal(SIGINT), SERVER_OK);
    CHECK(wait_refused(port, 10000));
    CHECK_RC(server_wait_timeout(100), SERVER_STILL_RUNNING);
    int64_t t0 = now_ms();
    CHECK_RC(server_notify_signal(SIGINT), SERVER_OK);
    CHECK_RC(server_wait(), 1);
    CHECK(now_ms() - t0 < 15000); /* forced at once, not at the 30 s deadline */
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_FORCED_SECOND_SIGNAL);
    CHECK_CUT(&a);
    RELEASE_BLOCKED(1);
    CHECK_RC(th_block_rc, SERVER_ERR_CLOSED);
    CHECK(port_bindable(port));
}

/* The signal drain deadline comes from signal_drain_timeout_ms. */
void test_notify_signal_drain_deadline(void) {
    struct server_options o;
    opts_local(&o);
    o.signal_drain_timeout_ms = 300;
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    int64_t t0 = now_ms();
    CHECK_RC(server_notify_signal(SIGTERM), SERVER_OK);
    CHECK_RC(server_wait(), 1);
    int64_t took = now_ms() - t0;
    CHECK(took >= 250 && took < 15000);
    CHECK_INT(server_last_stop_cause(), SERVER_CAUSE_FORCED_DEADLINE);
    CHECK_CUT(&a);
    RELEASE_BLOCKED(1);
    CHECK(port_bindable(port));
}

/* ---- SERVER_SIGNALS_LIBRARY --------------------------------------------------------------- */

static volatile sig_atomic_t custom_term, custom_int;
static void custom_handler(int sig) {
    if (sig == SIGTERM) custom_term++;
    if (sig == SIGINT) custom_int++;
}

void test_library_signals_chain_and_restore(void) {
    struct sigaction old_term, old_int;
    install(SIGTERM, custom_handler, &old_term);
    install(SIGINT, custom_handler, &old_int);

    /* cycle 1: raise(SIGTERM) with an in-flight request */
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_LIBRARY;
    o.signal_drain_timeout_ms = 30000;
    uint16_t port = start_or_die(&o);
    struct sigaction cur;
    sigaction(SIGTERM, NULL, &cur);
    CHECK(cur.sa_handler != custom_handler); /* the library's own handler is in place */
    CHECK(cur.sa_flags & SA_ONSTACK);
    CHECK(cur.sa_flags & SA_SIGINFO);
    CHECK(cur.sa_flags & SA_RESTART);
    sigaction(SIGINT, NULL, &cur);
    CHECK(cur.sa_handler != custom_handler);

    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    raise(SIGTERM);
    CHECK_INT(custom_term, 1); /* chained */
    CHECK(wait_refused(port, 10000));
    event_signal(&th_release);
    CHECK_ANSWERED(&a, 200, "released");
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK(current_handler(SIGTERM) == custom_handler); /* restored */
    CHECK(current_handler(SIGINT) == custom_handler);

    /* cycle 2: kill(getpid(), SIGINT), idle server */
    port = start_or_die(&o);
    CHECK(current_handler(SIGINT) != custom_handler);
    kill(getpid(), SIGINT);
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK_INT(custom_int, 1);
    CHECK_INT(custom_term, 1);
    CHECK(current_handler(SIGINT) == custom_handler);
    CHECK(current_handler(SIGTERM) == custom_handler);

    /* after the stop, the custom handler runs alone and the library does nothing */
    raise(SIGTERM);
    CHECK_INT(custom_term, 2);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
}

void test_library_signals_second_forces(void) {
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_LIBRARY;
    o.signal_drain_timeout_ms = 30000;
    uint16_t port = start_or_die(&o);
    async_req a;
    ASYNC_ENTERED(&a, port, "/block", 1);
    raise(SIGTERM);
    CHECK(wait_refused(port, 10000));
    raise(SIGINT);
    CHECK_STOPPED(port, 1, SERVER_CAUSE_FORCED_SECOND_SIGNAL);
    CHECK_CUT(&a);
    RELEASE_BLOCKED(1);
    CHECK(current_handler(SIGTERM) == SIG_DFL);
    CHECK(current_handler(SIGINT) == SIG_DFL);
}

/* SIG_DFL / SIG_IGN are not chained (the process survives) and are restored afterwards. */
void test_library_signals_default_not_chained(void) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_IGN);
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_LIBRARY;
    uint16_t port = start_or_die(&o);
    raise(SIGTERM); /* SIG_DFL would kill us if it were chained */
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_SIGNAL);
    CHECK(current_handler(SIGTERM) == SIG_DFL);
    CHECK(current_handler(SIGINT) == SIG_IGN);
    signal(SIGINT, SIG_DFL);
}

/* With SERVER_SIGNALS_HOST nothing is installed; with a NULL-equivalent default the library
 * handles signals (the one-call C program). */
void test_host_signals_untouched(void) {
    signal(SIGTERM, SIG_IGN);
    struct server_options o;
    opts_local(&o);
    o.signals = SERVER_SIGNALS_HOST;
    uint16_t port = start_or_die(&o);
    CHECK(current_handler(SIGTERM) == SIG_IGN);
    CHECK(current_handler(SIGINT) == SIG_DFL);
    raise(SIGTERM); /* ignored: the server keeps running */
    CHECK_RC(server_wait_timeout(200), SERVER_STILL_RUNNING);
    CHECK_GET(port, "/", 200, "OK");
    stop_and_check(port, 5000, SERVER_OK, 0);
    signal(SIGTERM, SIG_DFL);
}
