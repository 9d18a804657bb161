// emu-desc: fork children that compute and exit with status codes; parent reaps them with waitpid in child order (copy-on-write, exit, wait4)
// emu-args: 6
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char shared_before_fork[3 * 4096];

static int child_work(int k) {
    /* Copy-on-write: the child changes memory the parent also has. */
    for (size_t i = 0; i < sizeof shared_before_fork; i += 64)
        shared_before_fork[i] = (unsigned char)(shared_before_fork[i] + k + 1);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof shared_before_fork; i++)
        h = (h ^ shared_before_fork[i]) * 1099511628211ull;
    uint64_t x = (uint64_t)k + 1;
    for (int i = 0; i < 100000 * (k + 1); i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((h ^ x) % 200) + k % 50;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 6;
    if (n < 1 || n > 64) n = 6;
    for (size_t i = 0; i < sizeof shared_before_fork; i++) shared_before_fork[i] = (unsigned char)i;
    /* Nothing buffered may be duplicated into the children. */
    fflush(stdout);
    pid_t pids[64];
    for (int k = 0; k < n; k++) {
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 1;
        }
        if (p == 0) _exit(child_work(k));
        pids[k] = p;
    }
    int expect_ok = 1;
    for (int k = 0; k < n; k++) {
        int status = 0;
        pid_t r = waitpid(pids[k], &status, 0);
        /* Recompute the child's code: the parent's memory was untouched. */
        unsigned char saved[sizeof shared_before_fork];
        memcpy(saved, shared_before_fork, sizeof saved);
        int expect = child_work(k);
        memcpy(shared_before_fork, saved, sizeof saved);
        expect_ok &= WIFEXITED(status) && WEXITSTATUS(status) == expect;
        printf("child %d: reaped=%d exited=%d code=%d\n", k, r == pids[k], WIFEXITED(status) != 0,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    /* A child killed by a signal. */
    pid_t p = fork();
    if (p == 0) {
        abort();
    }
    int status = 0;
    waitpid(p, &status, 0);
    printf("aborted child: signaled=%d sig=%d\n", WIFSIGNALED(status) != 0,
           WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    int none = waitpid(-1, &status, WNOHANG);
    printf("no children left: %d\n", none == -1);
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof shared_before_fork; i++) sum += shared_before_fork[i];
    printf("parent memory unchanged: %d codes match: %d\n", sum == (sizeof shared_before_fork / 256) * (255 * 256 / 2), expect_ok);
    return 0;
}
