// emu-desc: a signal interrupts sem_wait asleep on a shared futex: EINTR without SA_RESTART (futex_wait's -ERESTARTSYS), the wait goes on with it
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t handled;
static void on(int s) { (void)s; handled++; }
static void ms(long n) { struct timespec ts = {0, n * 1000000}; while (nanosleep(&ts, &ts)) {} }
int main(void) {
    sem_t *sem = mmap(0, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int r = 0; r < 2; r++) {
        struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = on; sa.sa_flags = r ? SA_RESTART : 0;
        sigaction(SIGUSR1, &sa, 0);
        sem_init(sem, 1, 0);
        pid_t me = getpid(), p = fork();
        if (p == 0) { ms(100); kill(me, SIGUSR1); ms(100); sem_post(sem); _exit(0); }
        errno = 0;
        int x = sem_wait(sem);
        printf("%s: sem_wait %d %s handled %d\n", r ? "SA_RESTART" : "plain", x, x ? strerror(errno) : "ok", (int)handled);
        if (x) sem_wait(sem);
        waitpid(p, 0, 0);
    }
}
