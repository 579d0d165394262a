/* systemd and zero-downtime restarts through the C ABI: sd_notify (path and abstract sockets,
 * watchdog), adopting a listener (fd:N, systemd, systemd:NAME) without breaking it for the next
 * process, and the in-place upgrade (a successor started with the listener, readiness, drain;
 * failures leave the server serving). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* `gs_tests --serve ADDR TAG`: the successor an upgrade test starts. Serves TAG on ADDR (an
 * inherited listener is adopted) until SIGTERM; its exit status is the outcome. */
int gs_serve_child(int argc, char **argv) {
    if (argc != 4) return 2;
    struct server_options o;
    server_options_init(&o, SERVER_OPTIONS_VERSION);
    o.addr = argv[2];
    o.handler = tag_handler;
    o.userdata = argv[3];
    if (server_start(&o) != SERVER_OK) {
        fprintf(stderr, "gs_tests --serve: %s\n", server_last_error());
        return server_wait();
    }
    return server_wait();
}

/* SIGTERM to an upgrade's successor (a gs_tests --serve child), which must then exit 0. */
#define STOP_SUCCESSOR(pid)                                         \
    do {                                                            \
        kill((pid_t)(pid), SIGTERM);                                \
        int st_ = 0;                                                \
        CHECK(waitpid((pid_t)(pid), &st_, 0) == (pid_t)(pid));      \
        CHECK(WIFEXITED(st_) && WEXITSTATUS(st_) == 0);             \
    } while (0)

/* A datagram socket bound to `name` (a path, or "@abstract"); returns the fd. */
static int notify_socket(const char *name) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    socklen_t len;
    if (name[0] == '@') {
        memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    } else {
        unlink(name);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", name);
        len = sizeof sa;
    }
    REQUIRE(bind(fd, (struct sockaddr *)&sa, len) == 0);
    struct timeval tv = {0, 100 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Receives datagrams for up to ms, appending them (separated by "|") to out. */
static void collect(int fd, long ms, char *out, size_t cap) {
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = 0;
        for (char *p = buf; *p; p++)
            if (*p == '\n') *p = ';';
        size_t have = strlen(out);
        snprintf(out + have, cap - have, "%s|", buf);
    }
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* READY=1 with MAINPID once serving, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 when the
 * drain is requested; over an abstract and a path socket; nothing with SERVER_SD_NOTIFY_OFF. */
void test_sd_notify_ready_watchdog_stopping(void) {
    char abstract[64], path[64];
    snprintf(abstract, sizeof abstract, "@gs-test-notify-%d", (int)getpid());
    snprintf(path, sizeof path, "/tmp/gs-test-notify-%d.sock", (int)getpid());
    const char *names[2] = {abstract, path};
    for (int k = 0; k < 2; k++) {
        int fd = notify_socket(names[k]);
        setenv("NOTIFY_SOCKET", names[k], 1);
        setenv("WATCHDOG_USEC", "200000", 1); /* pings every 100 ms */
        struct server_options o;
        opts_local(&o);
        server_instance *srv = instance_start_or_die(&o);
        char got[8192] = "";
        collect(fd, 450, got, sizeof got);
        char want[64];
        snprintf(want, sizeof want, "READY=1;MAINPID=%d;", (int)getpid());
        CHECK(strstr(got, want) != NULL);
        CHECK(strstr(got, "STATUS=serving on 127.0.0.1:") != NULL);
        int pings = count_of(got, "WATCHDOG=1");
        note("%s: %d watchdog pings in 450 ms", names[k], pings);
        CHECK(pings >= 3 && pings <= 6);
        CHECK(strstr(got, "STOPPING=1") == NULL);
        CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
        got[0] = 0;
        collect(fd, 150, got, sizeof got);
        CHECK(strstr(got, "STOPPING=1;STATUS=draining: 0 connection(s) open;") != NULL);
        server_instance_free(srv);
        /* what was sent before the stop may still sit in the socket: read it, then expect
         * nothing more */
        char stale[1024];
        while (recv(fd, stale, sizeof stale, MSG_DONTWAIT) > 0) {
        }
        got[0] = 0;
        collect(fd, 300, got, sizeof got); /* nothing after the stop */
        CHECK_INT(count_of(got, "WATCHDOG=1"), 0);

        o.sd_notify = SERVER_SD_NOTIFY_OFF;
        srv = instance_start_or_die(&o);
        got[0] = 0;
        collect(fd, 300, got, sizeof got);
        CHECK_STR(got, "");
        CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
        server_instance_free(srv);
        close(fd);
    }
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    struct server_options o;
    opts_local(&o);
    o.sd_notify = 7;
    server_instance *srv = NULL;
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_INVALID_ARGUMENT);
}

/* fd:N adopts a listening socket; its drain stops accepting without breaking the socket: a
 * connection made after the first server drained waits in the queue, not refused, and the
 * next server on the same socket answers it — a restart that refuses nothing. */
void test_adopted_listener_survives_the_drain(void) {
    uint16_t port;
    int keep = listen_any(&port); /* the process manager's copy (systemd's) */
    REQUIRE(keep >= 0);
    char addr[32];
    snprintf(addr, sizeof addr, "fd:%d", dup(keep));
    struct server_options o;
    opts_local(&o);
    o.addr = addr;
    o.handler = tag_handler;
    o.userdata = "first";
    server_instance *a = instance_start_or_die(&o);
    CHECK_INT(server_instance_local_port(a), port);
    CHECK_GET(port, "/", 200, "first");
    CHECK_RC(server_instance_shutdown(a, 5000), SERVER_OK);
    server_instance_free(a);

    /* between the two servers: a client connects and sends; it is queued, not refused */
    CHECK(!port_refuses(port));
    async_req waiting;
    async_get(&waiting, port, "/");
    sleep_ms(100);
    snprintf(addr, sizeof addr, "fd:%d", dup(keep));
    o.userdata = "second";
    server_instance *b = instance_start_or_die(&o);
    CHECK_ANSWERED(&waiting, 200, "second");
    CHECK_RC(server_instance_shutdown(b, 5000), SERVER_OK);
    server_instance_free(b);
    close(keep);
    CHECK(wait_refused(port, 5000)); /* the last copy closed: now refused */
}

/* Bad fd:N, systemd without sockets, systemd:NAME lookups: a clear start error each. */
void test_adopt_errors_and_systemd_names(void) {
    struct server_options o;
    opts_local(&o);
    server_instance *srv = NULL;
    const char *bad[][2] = {
        {"fd:987", "fd 987 is not an open descriptor"},
        {"fd:0", "fd 0 is not a socket"},
        {"fd:x", "fd:N needs a descriptor number"},
        {"systemd", "no socket was passed to this process"},
        {"systemd:", "systemd:NAME needs a socket name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.addr = bad[i][0];
        int rc = server_instance_start(&srv, &o);
        CHECK(rc == SERVER_ERR_BIND || rc == SERVER_ERR_INVALID_ADDRESS);
        if (strstr(server_last_error(), bad[i][1]) == NULL)
            check_fail(__FILE__, __LINE__, "%s: %s", bad[i][0], server_last_error());
        CHECK(srv == NULL);
    }
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    int bound = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    REQUIRE(bind(bound, (struct sockaddr *)&sa, sizeof sa) == 0);
    char addr[32];
    snprintf(addr, sizeof addr, "fd:%d", udp);
    o.addr = addr;
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_BIND);
    CHECK(strstr(server_last_error(), "not a stream (TCP) socket") != NULL);
    snprintf(addr, sizeof addr, "fd:%d", bound);
    CHECK_RC(server_instance_start(&srv, &o), SERVER_ERR_BIND);
    CHECK(strstr(server_last_error(), "not listening") != NULL);
    close(udp);
    close(bound);

    /* systemd passes fds 3 and 4, named "metrics" and "web" */
    if (fcntl(3, F_GETFD) != -1 || fcntl(4, F_GETFD) != -1) {
        note("fds 3/4 in use in this process; systemd:NAME part skipped");
        return;
    }
    uint16_t p1, p2;
    int a = listen_any(&p1), b = listen_any(&p2);
    int l1 = fcntl(a, F_DUPFD, 20), l2 = fcntl(b, F_DUPFD, 20); /* away from 3 and 4 */
    close(a);
    close(b);
    REQUIRE(dup2(l1, 3) == 3 && dup2(l2, 4) == 4);
    close(l1);
    close(l2);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "metrics:web", 1);
    o.addr = "systemd:web";
    o.handler = tag_handler;
    o.userdata = "web";
    srv = instance_start_or_die(&o);
    CHECK_INT(server_instance_local_port(srv), p2);
    CHECK_GET(p2, "/", 200, "web");
    o.addr = "systemd:nope";
    server_instance *none = NULL;
    CHECK_RC(server_instance_start(&none, &o), SERVER_ERR_BIND);
    CHECK(strstr(server_last_error(), "no passed socket is named \"nope\"") != NULL);
    CHECK(strstr(server_last_error(), "fd 4 = web") != NULL);
    o.addr = "systemd"; /* the first: metrics */
    server_instance *first = instance_start_or_die(&o);
    CHECK_INT(server_instance_local_port(first), p1);
    CHECK_RC(server_instance_shutdown(srv, 5000), SERVER_OK);
    CHECK_RC(server_instance_shutdown(first, 5000), SERVER_OK);
    server_instance_free(srv);
    server_instance_free(first);
    setenv("LISTEN_PID", "1", 1); /* another process's sockets: ignored */
    o.addr = "systemd";
    CHECK_RC(server_instance_start(&none, &o), SERVER_ERR_BIND);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

static const char *self_exe(void) {
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    REQUIRE(n > 0);
    path[n] = 0;
    return path;
}

/* The in-place upgrade: the successor adopts the listener and reports ready, then this
 * server drains (cause UPGRADED, status 0) while the successor serves; requests made all along
 * are answered. Failures (exits, never ready, cannot start) leave this server serving. */
void test_instance_upgrade_hands_over(void) {
    struct server_options o;
    opts_local(&o);
    o.handler = tag_handler;
    o.userdata = "old";
    o.drain_delay_ms = 200;
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    const char *exe = self_exe();

    /* failures first: the server keeps serving each time */
    const char *fail_argv[] = {"false", NULL};
    CHECK_RC(server_instance_upgrade(srv, "/bin/false", fail_argv, 5000, NULL), SERVER_ERR_UPGRADE);
    CHECK(strstr(server_last_error(), "exited with status 1 before reporting ready") != NULL);
    const char *sleep_argv[] = {"sleep", "5", NULL};
    int64_t t0 = now_ms();
    CHECK_RC(server_instance_upgrade(srv, "/bin/sleep", sleep_argv, 300, NULL), SERVER_ERR_UPGRADE);
    CHECK(now_ms() - t0 < 3000);
    CHECK(strstr(server_last_error(), "did not report ready within 300 ms; it was stopped") != NULL);
    CHECK_RC(server_instance_upgrade(srv, "/nonexistent/prog", NULL, 300, NULL), SERVER_ERR_UPGRADE);
    CHECK(strstr(server_last_error(), "No such file or directory") != NULL);
    CHECK_RC(server_instance_upgrade(srv, NULL, fail_argv, 300, NULL), SERVER_ERR_INVALID_ARGUMENT);
    CHECK_INT(server_instance_drain_requested(srv), 0);
    CHECK_GET(port, "/", 200, "old");

    /* the hand-over */
    const char *argv[] = {exe, "--serve", addr, "new", NULL};
    uint32_t pid = 0;
    CHECK_RC(server_instance_upgrade(srv, exe, argv, 10000, &pid), SERVER_OK);
    REQUIRE(pid > 0);
    CHECK_INT(server_instance_drain_requested(srv), 1);
    CHECK_RC(server_instance_wait(srv), 0);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_UPGRADED);
    server_instance_free(srv);
    for (int i = 0; i < 5; i++) CHECK_GET(port, "/", 200, "new"); /* the successor, same port */
    STOP_SUCCESSOR(pid);
    CHECK(port_refuses(port));
}

/* Upgrades `srv` (started on `addr`) to `gs_tests --serve addr new`; the old one drains with
 * cause UPGRADED and the new one answers "new" on `port`; then stops the new one (exit 0). */
static void upgrade_to_same_addr(server_instance *srv, const char *addr, uint16_t port) {
    const char *exe = self_exe();
    const char *argv[] = {exe, "--serve", addr, "new", NULL};
    uint32_t pid = 0;
    int rc = server_instance_upgrade(srv, exe, argv, 10000, &pid);
    if (rc != SERVER_OK)
        check_fail(__FILE__, __LINE__, "upgrade on %s: %s", addr, server_last_error());
    if (rc != SERVER_OK) {
        server_instance_shutdown(srv, 0);
        return;
    }
    CHECK_RC(server_instance_wait(srv), 0);
    CHECK_INT(server_instance_stop_cause(srv), SERVER_CAUSE_UPGRADED);
    CHECK_GET(port, "/", 200, "new");
    STOP_SUCCESSOR(pid);
}

/* The successor gets the listener the way this server got it, so the same address adopts it
 * there: `fd:N` finds it at descriptor N again, `systemd:NAME` finds it under NAME. */
void test_upgrade_keeps_the_listener_shape(void) {
    struct server_options o;
    opts_local(&o);
    o.handler = tag_handler;
    o.userdata = "old";

    /* fd:N, with N above the descriptors the upgrade itself uses */
    uint16_t port;
    int l = listen_any(&port);
    REQUIRE(l >= 0);
    int n = fcntl(l, F_DUPFD_CLOEXEC, 40);
    REQUIRE(n >= 40);
    close(l);
    char addr[32];
    snprintf(addr, sizeof addr, "fd:%d", n);
    o.addr = addr;
    server_instance *srv = instance_start_or_die(&o);
    upgrade_to_same_addr(srv, addr, port);
    server_instance_free(srv);
    CHECK(port_refuses(port)); /* nobody holds the socket any more */

    /* systemd:NAME: systemd passed fds 3 and 4 as "metrics" and "web" */
    if (fcntl(3, F_GETFD) != -1 || fcntl(4, F_GETFD) != -1) {
        note("fds 3/4 in use in this process; systemd:NAME part skipped");
        return;
    }
    uint16_t p1, p2;
    int a = listen_any(&p1), b = listen_any(&p2);
    int l1 = fcntl(a, F_DUPFD, 20), l2 = fcntl(b, F_DUPFD, 20);
    close(a);
    close(b);
    REQUIRE(dup2(l1, 3) == 3 && dup2(l2, 4) == 4);
    close(l1);
    close(l2);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "metrics:web", 1);
    o.addr = "systemd:web";
    srv = instance_start_or_die(&o);
    CHECK_INT(server_instance_local_port(srv), p2);
    upgrade_to_same_addr(srv, "systemd:web", p2);
    server_instance_free(srv);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* Datagrams on a SO_PASSCRED socket, each as "PID:line;line;" in arrival order. */
typedef struct {
    int n;
    int pid[256];
    char msg[256][512];
} notes_t;

static void collect_cred(int fd, long ms, notes_t *out) {
    int64_t end = now_ms() + ms;
    while (now_ms() < end && out->n < 256) {
        char buf[511];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct ucred))];
        } ctl;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                           .msg_controllen = sizeof ctl.b};
        ssize_t n = recvmsg(fd, &m, 0);
        if (n <= 0) continue;
        buf[n] = 0;
        for (char *p = buf; *p; p++)
            if (*p == '\n') *p = ';';
        int pid = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                struct ucred cr;
                memcpy(&cr, CMSG_DATA(c), sizeof cr);
                pid = cr.pid;
            }
        out->pid[out->n] = pid;
        snprintf(out->msg[out->n], sizeof out->msg[0], "%s", buf);
        out->n++;
    }
}

/* Under a service manager (NOTIFY_SOCKET, watchdog on): after the upgrade this process tells it
 * MAINPID=<successor> and then nothing more — no STOPPING=1 (systemd, with NotifyAccess=all,
 * would stop the whole service), no STATUS= or watchdog pings that stand in for the successor's;
 * the successor pings and, when it is stopped, says STOPPING=1. */
void test_upgrade_hands_the_service_over(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/gs-test-handover-%d.sock", (int)getpid());
    int fd = notify_socket(path);
    int one = 1;
    REQUIRE(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "200000", 1); /* pings every 100 ms */
    struct server_options o;
    opts_local(&o);
    o.handler = tag_handler;
    o.userdata = "old";
    o.drain_delay_ms = 300; /* the old one keeps running (and would keep pinging) a while */
    server_instance *srv = instance_start_or_die(&o);
    uint16_t port = server_instance_local_port(srv);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    notes_t *before = calloc(1, sizeof *before);
    notes_t *after = calloc(1, sizeof *after);
    REQUIRE(before && after);
    collect_cred(fd, 250, before);
    REQUIRE(before->n >= 1);
    CHECK_INT(before->pid[0], getpid());
    CHECK(strncmp(before->msg[0], "READY=1;", 8) == 0);

    const char *exe = self_exe();
    const char *argv[] = {exe, "--serve", addr, "new", NULL};
    uint32_t child = 0;
    REQUIRE_RC(server_instance_upgrade(srv, exe, argv, 10000, &child), SERVER_OK);
    CHECK_RC(server_instance_wait(srv), 0);
    server_instance_free(srv);
    collect_cred(fd, 350, after); /* the successor serves alone now */
    STOP_SUCCESSOR(child);
    collect_cred(fd, 150, after);

    char mainpid[32];
    snprintf(mainpid, sizeof mainpid, "MAINPID=%u;", child);
    int handed = -1, child_pings = 0, child_stopping = 0, old_after = 0, old_pings_after = 0;
    for (int i = 0; i < after->n; i++) {
        const char *m = after->msg[i];
        if (after->pid[i] == getpid()) {
            if (handed < 0 && strstr(m, mainpid) == m) {
                handed = i;
                CHECK(strstr(m, "STOPPING=1") == NULL);
                /* what `systemctl status` shows from now on: the service, served by the child */
                char status[128];
                snprintf(status, sizeof status, "STATUS=serving on %s (pid %u, upgraded from pid %d);",
                         addr, child, (int)getpid());
                if (strstr(m, status) == NULL)
                    check_fail(__FILE__, __LINE__, "hand-over datagram %s, want %s", m, status);
            } else if (strcmp(m, "WATCHDOG=1;") == 0) {
                old_pings_after += handed >= 0; /* one may race the hand-over */
            } else if (handed >= 0) {
                old_after++;
                note("after the hand-over the old process said: %s", m);
            }
        } else if (after->pid[i] == (int)child) {
            child_pings += strcmp(m, "WATCHDOG=1;") == 0;
            child_stopping += strstr(m, "STOPPING=1;") != NULL;
            CHECK(strstr(m, "READY=1") == NULL); /* that went to the old process */
        }
    }
    CHECK(handed >= 0);
    CHECK_INT(old_after, 0);
    CHECK(old_pings_after <= 1);
    CHECK(child_pings >= 2);
    CHECK_INT(child_stopping, 1);
    free(before);
    free(after);
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}
