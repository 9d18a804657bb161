// emu-desc: exit status from main's return value (42) after buffered output is flushed by exit
// emu-args:
#include <stdio.h>

int main(void) {
    printf("returning 42 from main\n");
    return 42;
}
