// emu-desc: MAP_SHARED|MAP_ANONYMOUS is one shmem object (mm/shmem.c shmem_zero_setup): pages first touched after a fork are the same in parent and child, MADV_DONTNEED keeps their contents; a private anonymous page is not shared
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

int main(void) {
    volatile char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t c = fork();
    if (c == 0) {
        // Untouched before the fork: the child's write is the parent's page too.
        p[PAGE] = 42;
        // The parent's write, made before the child ran, is visible here.
        while (p[0] != 7) {
            usleep(100);
        }
        p[2 * PAGE] = (char)(p[0] + 1);
        _exit(0);
    }
    p[0] = 7;
    int st = 0;
    waitpid(c, &st, 0);
    printf("child exit %d, page1 %d, page2 %d\n", WEXITSTATUS(st), p[PAGE], p[2 * PAGE]);
    // MADV_DONTNEED on a shared mapping: the contents stay in the shmem object.
    if (madvise((void *)p, 4 * PAGE, MADV_DONTNEED) != 0) {
        perror("madvise");
    }
    printf("after DONTNEED: %d %d %d %d\n", p[0], p[PAGE], p[2 * PAGE], p[3 * PAGE]);
    // A private mapping is not shared across fork.
    volatile char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    c = fork();
    if (c == 0) {
        q[0] = 9;
        _exit(q[0]);
    }
    waitpid(c, &st, 0);
    printf("private: child saw %d, parent sees %d\n", WEXITSTATUS(st), q[0]);
    return 0;
}
