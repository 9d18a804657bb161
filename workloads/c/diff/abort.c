// emu-desc: abort() after flushing stdout: SIGABRT delivery and death by signal (status 134 in a shell)
// emu-args:
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("about to abort\n");
    fflush(stdout);
    abort();
}
