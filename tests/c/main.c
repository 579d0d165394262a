/*
 * Runner for the graceserve C-ABI suite. The library keeps one global server per process, so
 * every test runs in a fresh process (fork + exec of this binary with --one NAME, before this
 * process ever touches the library) under a per-test deadline: a hang or a crash fails that test
 * only, with its name.
 *
 *   gs_tests                 run every test
 *   gs_tests NAME...         run the named tests
 *   gs_tests --list          list test names
 *   gs_tests --one NAME      run one test in this process (what the runner execs)
 *   gs_tests --serve ADDR T  serve T on ADDR until SIGTERM (the successor of the upgrade test)
 *
 * Env: GS_TEST_TIMEOUT_S (per-test deadline, default 60), GS_STRICT=1 (a test marked KB() in
 * tests.def, i.e. one that exposes a known library bug, fails the run instead of being reported
 * as KNOWN-BUG). A KB() test that passes fails the run: the bug is fixed, turn KB into T.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define T(name) void test_##name(void);
#define KB(name, why) void test_##name(void);
#include "tests.def"
#undef T
#undef KB

static const struct {
    const char *name;
    void (*fn)(void);
    const char *known_bug; /* non-NULL: the test exposes this library bug and is expected to fail */
} TESTS[] = {
#define T(name) {#name, test_##name, NULL},
#define KB(name, why) {#name, test_##name, why},
#include "tests.def"
#undef T
#undef KB
};
#define N_TESTS (sizeof TESTS / sizeof TESTS[0])

static const char *known_bug_of(const char *name) {
    for (size_t i = 0; i < N_TESTS; i++)
        if (strcmp(TESTS[i].name, name) == 0) return TESTS[i].known_bug;
    return NULL;
}

static int run_one(const char *name) {
    for (size_t i = 0; i < N_TESTS; i++) {
        if (strcmp(TESTS[i].name, name) != 0) continue;
        th_reset();
        TESTS[i].fn();
        return atomic_load(&g_failures) ? 1 : 0;
    }
    fprintf(stderr, "unknown test %s (see --list)\n", name);
    return 2;
}

static int run_child(const char *self, const char *name, long timeout_s, double *secs) {
    int64_t t0 = now_ms();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        char *args[] = {(char *)self, (char *)"--one", (char *)name, NULL};
        execv("/proc/self/exe", args);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            perror("waitpid");
            return -1;
        }
        if (now_ms() - t0 > timeout_s * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *secs = (double)(now_ms() - t0) / 1000.0;
            fprintf(stderr, "    FAIL: timed out after %ld s (hang)\n", timeout_s);
            return -2;
        }
        sleep_ms(10);
    }
    *secs = (double)(now_ms() - t0) / 1000.0;
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "    FAIL: killed by signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
        return -3;
    }
    return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < N_TESTS; i++) printf("%s\n", TESTS[i].name);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--one") == 0) return run_one(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "--serve") == 0) return gs_serve_child(argc, argv);

    long timeout_s = getenv("GS_TEST_TIMEOUT_S") ? atol(getenv("GS_TEST_TIMEOUT_S")) : 60;
    if (timeout_s <= 0) timeout_s = 60;
    bool strict = getenv("GS_STRICT") && strcmp(getenv("GS_STRICT"), "1") == 0;

    const char **names = calloc(N_TESTS + (size_t)argc, sizeof *names);
    size_t n = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) names[n++] = argv[i];
    } else {
        for (size_t i = 0; i < N_TESTS; i++) names[n++] = TESTS[i].name;
    }

    int pass = 0, fail = 0, kbug = 0;
    int64_t t0 = now_ms();
    for (size_t i = 0; i < n; i++) {
        double secs = 0;
        printf("RUN  %s\n", names[i]);
        const char *kb = known_bug_of(names[i]);
        int rc = run_child(argv[0], names[i], timeout_s, &secs);
        const char *verdict;
        if (kb && rc != 0) {
            fprintf(stderr, "    known library bug: %s\n", kb);
        }
        if (rc == 0 && kb) {
            verdict = "FAIL (marked KB but passed: the bug is fixed, change KB to T in tests.def)";
            fail++;
        } else if (rc == 0) {
            verdict = "PASS";
            pass++;
        } else if (kb && !strict) {
            verdict = "KNOWN-BUG";
            kbug++;
        } else {
            verdict = "FAIL";
            fail++;
        }
        printf("%s %s (%.2fs)\n", verdict, names[i], secs);
        fflush(stdout);
    }
    printf("\n%d passed, %d failed, %d known library bugs, %zu total, %.1fs\n", pass, fail, kbug,
           n, (double)(now_ms() - t0) / 1000.0);
    free(names);
    return fail ? 1 : 0;
}
