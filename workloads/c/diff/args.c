// emu-desc: argc/argv and selected environment variables as laid out by the loader on the initial stack
// emu-args: one two --flag=value 12345 ünïcødé -
//
// Prints argc, every argv string and the EMU_TEST_ variables a test passes;
// never the whole environment, which differs between hosts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    /* argv[0] depends on how the program was started; only its presence
       is printed. */
    printf("argv[0] present=%d\n", argv[0] != NULL && argv[0][0] != 0);
    for (int i = 1; i < argc; i++) printf("argv[%d]=[%s] len=%zu\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %d\n", argv[argc] == NULL);

    const char *v = getenv("EMU_TEST_VAR");
    printf("EMU_TEST_VAR=%s\n", v ? v : "(unset)");
    int count = 0;
    size_t total_len = 0;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "EMU_TEST_", 9) == 0) {
            count++;
            total_len += strlen(*e);
        }
    }
    printf("EMU_TEST_* count=%d total_len=%zu\n", count, total_len);
    /* setenv/getenv round trip through the libc's own environment copy. */
    setenv("EMU_TEST_SET_BY_PROGRAM", "yes", 1);
    v = getenv("EMU_TEST_SET_BY_PROGRAM");
    printf("setenv round trip=%s\n", v ? v : "(unset)");
    unsetenv("EMU_TEST_SET_BY_PROGRAM");
    printf("after unsetenv=%s\n", getenv("EMU_TEST_SET_BY_PROGRAM") ? "set" : "(unset)");
    return 0;
}
