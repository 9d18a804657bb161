// emu-desc: smallest smoke test: one line of stdout, argc, exit 0 (loader, write, exit_group)
// emu-args: world
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from emu, %s! argc=%d\n", argc > 1 ? argv[1] : "stranger", argc);
    return 0;
}
