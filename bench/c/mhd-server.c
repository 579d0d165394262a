/*
 * mhd-server: libmicrohttpd comparison server for the benchmarks (bench/c/run.sh).
 *   mhd-server [--addr IPV4:PORT]
 * 200 "OK" (content-type text/plain; charset=utf-8) to every request; epoll, one internal
 * polling thread per CPU in the affinity mask (MHD_OPTION_THREAD_POOL_SIZE). SIGINT/SIGTERM: MHD_stop_daemon, exit 0.
 */
#include <pthread.h>
#include <sched.h>

#include "peer-common.h"
#include <microhttpd.h>

static struct MHD_Response *OK_RESPONSE;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls) {
    (void)cls; (void)url; (void)method; (void)version; (void)upload_data;
    if (*req_cls == NULL) { /* first call: headers only */
        *req_cls = conn;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* discard any body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, OK_RESPONSE);
}

int main(int argc, char **argv) {
    struct sockaddr_in sa;
    peer_parse(argc, argv, "mhd-server", &sa);
    sigset_t sigs = peer_block_signals();
    OK_RESPONSE = MHD_create_response_from_buffer(2, (void *)"OK", MHD_RESPMEM_PERSISTENT);
    if (!OK_RESPONSE || MHD_add_response_header(OK_RESPONSE, "Content-Type", "text/plain; charset=utf-8") != MHD_YES) {
        fprintf(stderr, "mhd-server: cannot build the response\n");
        return 1;
    }
    /* One polling thread per CPU we may run on (taskset), like tokio's default worker count. */
    cpu_set_t cpus;
    long ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : sysconf(_SC_NPROCESSORS_ONLN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(ncpu > 0 ? ncpu : 1),
        MHD_OPTION_CONNECTION_LIMIT, 20000u,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd-server: cannot listen on %s:%u\n", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    peer_ready(&sa, info ? info->port : ntohs(sa.sin_port));
    peer_wait_signal(&sigs);
    MHD_stop_daemon(d);
    MHD_destroy_response(OK_RESPONSE);
    return 0;
}
