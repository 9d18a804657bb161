// emu-desc: the vsyscall page as Linux's default vsyscall=xonly: calls to gettimeofday, time and getcpu at their fixed addresses are emulated; reading the page, or calling elsewhere in it, is SIGSEGV; it is listed in /proc/self/maps
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf jb;
static void on_segv(int s) { siglongjmp(jb, s); }

typedef long (*gtod_t)(struct timeval *, struct timezone *);
typedef long (*time_t_fn)(time_t *);
typedef long (*getcpu_t)(unsigned *, unsigned *, void *);

int main(void) {
    gtod_t vgtod = (gtod_t)0xffffffffff600000UL;
    time_t_fn vtime = (time_t_fn)0xffffffffff600400UL;
    getcpu_t vgetcpu = (getcpu_t)0xffffffffff600800UL;
    struct timeval tv = {0, -1}, now;
    struct timezone tz = {77, 77};
    long r = vgtod(&tv, &tz);
    gettimeofday(&now, 0);
    printf("gettimeofday: %ld sane %d usec ok %d tz %d %d\n", r,
           tv.tv_sec > 1700000000 && tv.tv_sec <= now.tv_sec && now.tv_sec - tv.tv_sec < 5,
           tv.tv_usec >= 0 && tv.tv_usec < 1000000, tz.tz_minuteswest, tz.tz_dsttime);
    printf("gettimeofday NULL: %ld\n", vgtod(0, 0));
    time_t t = 0;
    long s = vtime(&t);
    printf("time: sane %d stored %d\n", s > 1700000000 && s - now.tv_sec < 5, s == t);
    printf("time NULL: sane %d\n", vtime(0) >= s);
    unsigned cpu = 99999, node = 99999;
    r = vgetcpu(&cpu, &node, 0);
    printf("getcpu: %ld cpu ok %d node %u\n", r, cpu < (unsigned)sysconf(_SC_NPROCESSORS_CONF),
           node);
    signal(SIGSEGV, on_segv);
    int sig = sigsetjmp(jb, 1);
    if (!sig) {
        volatile long x = *(volatile long *)0xffffffffff600000UL;
        printf("read: %ld\n", x);
    } else {
        printf("read of the page: signal %d\n", sig);
    }
    sig = sigsetjmp(jb, 1);
    if (!sig) {
        ((gtod_t)0xffffffffff600100UL)(&tv, 0);
        printf("call at +0x100 returned\n");
    } else {
        printf("call at +0x100: signal %d\n", sig);
    }
    sig = sigsetjmp(jb, 1);
    if (!sig) {
        vgtod((struct timeval *)8, 0);
        printf("bad pointer returned\n");
    } else {
        printf("gettimeofday with a bad pointer: signal %d\n", sig);
    }
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "[vsyscall]") && !strncmp(line, "ffffffffff600000-ffffffffff601000 --xp", 38))
            found = 1;
    printf("maps lists [vsyscall]: %d\n", found);
    return 0;
}
