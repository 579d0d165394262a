/* HTTP/2 (h2c prior knowledge) through the same C ABI: version 20, bodies, GOAWAY on drain.
 * A minimal client: the preface, SETTINGS, one HEADERS frame with HPACK literals (no Huffman,
 * no dynamic table), then frames read until the stream ends. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

enum { F_DATA = 0, F_HEADERS = 1, F_SETTINGS = 4, F_PING = 6, F_GOAWAY = 7, F_RST = 3 };

static int send_frame(int fd, uint8_t type, uint8_t flags, uint32_t stream, const void *p, size_t n) {
    uint8_t h[9] = {(uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, type, flags,
                    (uint8_t)(stream >> 24), (uint8_t)(stream >> 16), (uint8_t)(stream >> 8),
                    (uint8_t)stream};
    if (send_all(fd, h, 9) != 0) return -1;
    return n ? send_all(fd, p, n) : 0;
}

static int recv_exact(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

typedef struct {
    uint8_t type, flags;
    uint32_t stream;
    uint32_t len;
    uint8_t payload[65536];
} frame;

static int read_frame(int fd, frame *f) {
    uint8_t h[9];
    if (recv_exact(fd, h, 9) != 0) return -1;
    f->len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    f->type = h[3];
    f->flags = h[4];
    f->stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffff;
    if (f->len > sizeof f->payload) return -1;
    return recv_exact(fd, f->payload, f->len);
}

/* Literal header field without indexing, indexed name (static table index < 15). */
static size_t hpack_lit(uint8_t *out, uint8_t name_index, const char *value) {
    size_t n = strlen(value);
    out[0] = name_index; /* 0000xxxx */
    out[1] = (uint8_t)n;  /* no Huffman, n < 127 */
    memcpy(out + 2, value, n);
    return 2 + n;
}

static int h2_open(uint16_t port) {
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    const char *preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (send_all(fd, preface, strlen(preface)) != 0 || send_frame(fd, F_SETTINGS, 0, 0, NULL, 0) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends a request on `stream`. method_index: 2 = GET, 3 = POST (static table). */
static int h2_request(int fd, uint32_t stream, uint8_t method_index, const char *path, const char *body) {
    uint8_t hb[512];
    size_t n = 0;
    hb[n++] = (uint8_t)(0x80 | method_index);
    hb[n++] = 0x86; /* :scheme http */
    n += hpack_lit(hb + n, 4, path);          /* :path */
    n += hpack_lit(hb + n, 1, "127.0.0.1");   /* :authority */
    bool has_body = body && *body;
    if (send_frame(fd, F_HEADERS, (uint8_t)(0x4 | (has_body ? 0 : 0x1)), stream, hb, n) != 0) return -1;
    if (has_body) return send_frame(fd, F_DATA, 0x1, stream, body, strlen(body));
    return 0;
}

typedef struct {
    bool got_headers, ended, goaway;
    uint8_t first_header_byte;
    char body[4096];
    size_t body_len;
} h2_result;

/* Reads frames until `stream` ends (or a GOAWAY when stop_at_goaway), ACKing SETTINGS/PING. */
static int h2_read(int fd, uint32_t stream, bool stop_at_goaway, h2_result *r) {
    static frame f;
    while (!r->ended) {
        if (read_frame(fd, &f) != 0) return -1;
        if (f.type == F_SETTINGS && !(f.flags & 0x1)) {
            send_frame(fd, F_SETTINGS, 0x1, 0, NULL, 0);
        } else if (f.type == F_PING && !(f.flags & 0x1)) {
            send_frame(fd, F_PING, 0x1, 0, f.payload, f.len);
        } else if (f.type == F_GOAWAY) {
            r->goaway = true;
            if (stop_at_goaway) return 0;
        } else if (f.stream == stream && f.type == F_HEADERS) {
            r->got_headers = true;
            size_t off = (f.flags & 0x8) ? 1 + f.payload[0] : 0; /* padded */
            if (f.flags & 0x20) off += 5;                        /* priority */
            r->first_header_byte = f.len > off ? f.payload[off] : 0;
            if (f.flags & 0x1) r->ended = true;
        } else if (f.stream == stream && f.type == F_DATA) {
            size_t off = (f.flags & 0x8) ? 1 + f.payload[0] : 0;
            size_t dl = f.len - off - ((f.flags & 0x8) ? f.payload[0] : 0);
            if (r->body_len + dl < sizeof r->body) {
                memcpy(r->body + r->body_len, f.payload + off, dl);
                r->body_len += dl;
                r->body[r->body_len] = '\0';
            }
            if (f.flags & 0x1) r->ended = true;
        } else if (f.stream == stream && f.type == F_RST) {
            return -1;
        }
    }
    return 0;
}

static atomic_int h2_versions_seen;
static void h2_handler(void *ud, struct server_request *req) {
    (void)ud;
    if (server_request_version(req) == 20) atomic_fetch_add(&h2_versions_seen, 1);
    th_handler(NULL, req);
}

void test_h2c_requests_and_goaway(void) {
    uint16_t port = start_local_with(h2_handler);
    int fd = h2_open(port);
    REQUIRE(fd >= 0);

    REQUIRE(h2_request(fd, 1, 2, "/", NULL) == 0);
    h2_result r = {0};
    CHECK(h2_read(fd, 1, false, &r) == 0);
    CHECK(r.got_headers);
    CHECK_INT(r.first_header_byte, 0x88); /* :status 200 (static table index 8) */
    CHECK_STR(r.body, "OK");

    REQUIRE(h2_request(fd, 3, 3, "/echo", "over h2") == 0);
    memset(&r, 0, sizeof r);
    CHECK(h2_read(fd, 3, false, &r) == 0);
    CHECK_INT(r.first_header_byte, 0x88);
    CHECK_STR(r.body, "over h2");
    CHECK_INT(atomic_load(&h2_versions_seen), 2);

    /* an in-flight h2 request during the drain: GOAWAY arrives, the stream still completes */
    REQUIRE(h2_request(fd, 5, 2, "/block", NULL) == 0);
    REQUIRE(event_wait_n(&th_entered, 1, 10000));
    struct server_stats st = SERVER_STATS_INIT;
    CHECK_RC(server_get_stats(&st), SERVER_OK);
    CHECK_INT(st.requests_active, 1);
    shutdown_call sc;
    shutdown_async(&sc, NULL, 20000);
    memset(&r, 0, sizeof r);
    CHECK(h2_read(fd, 5, true, &r) == 0);
    CHECK(r.goaway);
    CHECK(!r.ended);
    event_signal(&th_release);
    CHECK(h2_read(fd, 5, false, &r) == 0);
    CHECK(r.ended);
    CHECK_STR(r.body, "released");
    CHECK_RC(shutdown_join(&sc), SERVER_OK);
    char buf[64];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) { /* trailing frames, then close */
    }
    CHECK(n == 0);
    close(fd);
    CHECK_STOPPED(port, 0, SERVER_CAUSE_GRACEFUL_CALL);
}
