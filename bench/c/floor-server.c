/*
 * floor-server: the physical floor of the stop benchmark (bench/c/bench.py, "idle" phase).
 *   floor-server [--addr IPV4:PORT]
 * The least an HTTP server can do: one thread, epoll, answers every request head it reads with
 * a fixed 200 "OK" (content-type text/plain; charset=utf-8, keep-alive), no parsing beyond
 * finding the end of the head and a "Connection: close". On SIGINT/SIGTERM it closes every
 * connection — split over one thread per CPU it may run on (taskset), as the servers measured
 * beside it may — and exits 0. So the time from the signal to the exit is the kernel's
 * teardown of the open connections plus one close() each: no HTTP server can stop faster.
 * Not graceserve code.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "peer-common.h"

#define MAX_FDS 65536

static const char RESPONSE[] = "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
                               "content-length: 2\r\n\r\nOK";

/* Bytes of an unfinished request head per connection: enough to find "\r\n\r\n" across reads. */
static char tail[MAX_FDS][4];
static unsigned char open_fd[MAX_FDS];

/* Answers the request heads completed by this read; returns 0 when the connection must close
 * (a "Connection: close" request). */
static int answer_heads(int fd, const char *buf, ssize_t n) {
    /* Counts complete request heads in this read (pipelining included), with the last bytes
     * of the previous read in front. */
    char window[4];
    memcpy(window, tail[fd], 4);
    int heads = 0;
    for (ssize_t i = 0; i < n; i++) {
        memmove(window, window + 1, 3);
        window[3] = buf[i];
        if (memcmp(window, "\r\n\r\n", 4) == 0) heads++;
    }
    memcpy(tail[fd], window, 4);
    for (int h = 0; h < heads; h++) {
        if (write(fd, RESPONSE, sizeof RESPONSE - 1) < 0) return 0;
    }
    return !(memmem(buf, (size_t)n, "onnection: close", 16) && heads > 0);
}

struct closer {
    int from, step;
    pthread_t th;
};

static void *close_some(void *arg) {
    struct closer *c = arg;
    for (int fd = c->from; fd < MAX_FDS; fd += c->step)
        if (open_fd[fd]) close(fd);
    return NULL;
}

/* Closes every open connection, on one thread per CPU in the affinity mask. */
static void close_all(void) {
    cpu_set_t cpus;
    int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    struct closer c[64];
    for (int i = 0; i < n; i++) {
        c[i].from = i;
        c[i].step = n;
    }
    int started[64] = {0};
    for (int i = 1; i < n; i++) started[i] = pthread_create(&c[i].th, NULL, close_some, &c[i]) == 0;
    close_some(&c[0]);
    for (int i = 1; i < n; i++) {
        if (started[i])
            pthread_join(c[i].th, NULL);
        else
            close_some(&c[i]); /* no thread: its share is closed here */
    }
}

int main(int argc, char **argv) {
    struct sockaddr_in sa;
    peer_parse(argc, argv, "floor-server", &sa);
    sigset_t sigs = peer_block_signals();
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sfd < 0 || ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1024) != 0) {
        fprintf(stderr, "floor-server: cannot listen: %s\n", strerror(errno));
        return 1;
    }
    socklen_t len = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    peer_ready(&sa, ntohs(sa.sin_port));

    struct epoll_event evs[256];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == sfd) {
                close_all();
                return 0;
            }
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    memset(tail[c], 0, 4);
                    open_fd[c] = 1;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r;
            int keep = 1;
            while (keep && (r = read(fd, buf, sizeof buf)) > 0) keep = answer_heads(fd, buf, r);
            if (!keep || r == 0 || (r < 0 && errno != EAGAIN)) {
                open_fd[fd] = 0;
                close(fd);
            }
        }
    }
}
