/* Shared by the comparison servers (mhd-server.c, civetweb-server.c): argument parsing, the
 * readiness line, and waiting for SIGINT/SIGTERM. Not graceserve code. */
#ifndef BENCH_PEER_COMMON_H
#define BENCH_PEER_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses argv for "--addr 127.0.0.1:PORT" (IPv4 only); exits 2 on anything else. */
static inline void peer_parse(int argc, char **argv, const char *name, struct sockaddr_in *out) {
    const char *addr = "127.0.0.1:8080";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
            addr = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--addr IPV4:PORT]\n", name);
            exit(2);
        }
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    if (!colon || hl >= sizeof host || *end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        fprintf(stderr, "%s: invalid --addr %s (want IPV4:PORT)\n", name, addr);
        exit(2);
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1) {
        fprintf(stderr, "%s: invalid --addr %s (want IPV4:PORT)\n", name, addr);
        exit(2);
    }
    out->sin_port = htons((uint16_t)port);
}

/* Blocks SIGINT/SIGTERM in every thread started after this call; returns the set. */
static inline sigset_t peer_block_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return set;
}

static inline void peer_ready(const struct sockaddr_in *a, unsigned port) {
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    printf("listening on %s:%u\n", host, port);
    fflush(stdout);
}

static inline void peer_wait_signal(sigset_t *set) {
    int sig = 0;
    sigwait(set, &sig);
}
#endif
