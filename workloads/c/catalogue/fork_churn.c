// emu-desc: repeatedly fork a child that writes a few pages (copy-on-write) and exits while the parent waits: mm creation/teardown, lazy TLB, COW faults
// emu-args: 200 4
//
// Usage: fork_churn FORKS PAGES
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    int pages = argc > 2 ? atoi(argv[2]) : 4;
    if (pages < 1) pages = 1;
    /* Parent memory the children write to, forcing COW copies. */
    unsigned char *mem = mmap(NULL, (size_t)pages * PAGE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 1;
    for (int k = 0; k < pages; k++) mem[(size_t)k * PAGE] = (unsigned char)k;
    fflush(stdout);
    unsigned long long ok = 0, bad = 0, code_sum = 0;
    for (int i = 0; i < forks; i++) {
        pid_t p = fork();
        if (p < 0) {
            perror("fork");
            return 1;
        }
        if (p == 0) {
            unsigned s = 0;
            for (int k = 0; k < pages; k++) {
                mem[(size_t)k * PAGE] += 1;
                s += mem[(size_t)k * PAGE];
            }
            _exit((int)(s % 256));
        }
        int status = 0;
        if (waitpid(p, &status, 0) == p && WIFEXITED(status)) {
            ok++;
            code_sum += (unsigned)WEXITSTATUS(status);
        } else {
            bad++;
        }
    }
    unsigned parent_ok = 1;
    for (int k = 0; k < pages; k++) parent_ok &= mem[(size_t)k * PAGE] == (unsigned char)k;
    printf("fork_churn forks=%d pages=%d: children reaped=%llu failed=%llu exit-code sum=%llu "
           "parent memory intact=%u\n",
           forks, pages, ok, bad, code_sum, parent_ok);
    return bad || !parent_ok ? 1 : 0;
}
