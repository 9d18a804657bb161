// emu-desc: mprotect(PROT_NONE) of pages already mapped: every user access faults (SIGSEGV, SEGV_ACCERR) and system calls reading or writing them fail with EFAULT, as a pte_protnone entry does; PROT_READ and PROT_READ|PROT_WRITE give the same pages back
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static sigjmp_buf jb;
static void h(int s, siginfo_t *i, void *c) { (void)s; (void)c; printf("  SIGSEGV code %d at +%ld\n", i->si_code, (long)((char*)i->si_addr - (char*)0) & 0xfff); siglongjmp(jb, 1); }
int main(void) {
  struct sigaction sa = {0}; sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_NODEFER; sigaction(SIGSEGV, &sa, 0);
  volatile char *p = mmap(0, 3 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  p[0] = 5; p[4096] = 6;
  mprotect((void*)p, 3 * 4096, PROT_NONE);
  for (int k = 0; k < 3; k++) {
    printf("page %d read:\n", k);
    if (!sigsetjmp(jb, 1)) printf("  got %d\n", p[k * 4096]);
  }
  int fds[2]; pipe(fds); write(fds[1], "abc", 3);
  errno = 0; long r = read(fds[0], (void*)p, 3); printf("read into PROT_NONE: %ld errno %d\n", r, errno);
  r = write(fds[1], (void*)p, 3); printf("write from PROT_NONE: %ld errno %d\n", r, errno);
  mprotect((void*)p, 3 * 4096, PROT_READ);
  printf("after PROT_READ: %d %d %d\n", p[0], p[4096], p[8192]);
  printf("write:\n");
  if (!sigsetjmp(jb, 1)) { p[0] = 1; printf("  wrote\n"); }
  mprotect((void*)p, 3 * 4096, PROT_READ|PROT_WRITE);
  p[0] = 9; printf("after RW: %d\n", p[0]);
  return 0;
}
