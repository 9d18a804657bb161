// emu-desc: a child outlives its parent: it is reparented (getppid changes), keeps running and printing after the parent's exit, and the run's status is the parent's; the parent's unreaped zombie child goes too
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int ready[2], gone[2];
    pipe(ready);
    pipe(gone);
    pid_t parent = getpid();
    if (fork() == 0) _exit(9); /* a zombie the parent never reaps */
    pid_t p = fork();
    if (p == 0) {
        close(ready[0]);
        close(gone[1]);
        printf("child: started, parent is mine %d\n", getppid() == parent);
        fflush(stdout);
        close(ready[1]); /* the parent may go */
        char c;
        ssize_t r = read(gone[0], &c, 1); /* EOF when the parent has exited */
        /* Linux closes the files before it reparents the children: wait for that. */
        int tries = 0;
        while (getppid() == parent && tries++ < 1000) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, 0);
        }
        printf("child: parent gone (read %zd), reparented %d\n", r, getppid() != parent);
        fflush(stdout);
        pid_t g = fork();
        if (g == 0) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, 0);
            printf("grandchild: done\n");
            exit(0);
        }
        int st;
        waitpid(g, &st, 0);
        printf("child: grandchild reaped, status %d\n", WEXITSTATUS(st));
        exit(5);
    }
    close(ready[1]);
    close(gone[0]);
    char c;
    read(ready[0], &c, 1); /* EOF once the child has printed its first line */
    printf("parent: exiting with 3\n");
    fflush(stdout);
    _exit(3);
}
