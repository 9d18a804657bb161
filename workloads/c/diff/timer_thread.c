// emu-desc: timer_create with SIGEV_THREAD: the libc's helper thread takes the timer's SIGEV_THREAD_ID signal with sigwaitinfo and runs the function with the timer's value
// emu-cflags: -pthread
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
static volatile int fired;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void fn(union sigval v) { pthread_mutex_lock(&mu); fired = v.sival_int; pthread_cond_signal(&cv); pthread_mutex_unlock(&mu); }
int main(void) {
    struct sigevent sev; memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD; sev.sigev_notify_function = fn; sev.sigev_value.sival_int = 77;
    timer_t t; if (timer_create(CLOCK_MONOTONIC, &sev, &t)) { perror("timer_create"); return 1; }
    struct itimerspec ts = {{0,0},{0,20000000}}; timer_settime(t, 0, &ts, 0);
    pthread_mutex_lock(&mu); while (!fired) pthread_cond_wait(&cv, &mu); pthread_mutex_unlock(&mu);
    printf("SIGEV_THREAD ran with %d\n", fired); timer_delete(t); return 0;
}
