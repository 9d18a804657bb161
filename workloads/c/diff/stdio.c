// emu-desc: stdin read to EOF, line/word counts, reversed and uppercased lines, interleaved stdout/stderr with fflush, exit code from the input
// emu-args:
// emu-stdin: The quick brown fox\njumps over the lazy dog.\n\n  leading spaces and trailing   \nTabs\there\tand there\nlast line without newline
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return 99;
    size_t got;
    /* Small reads so the stream buffer refills several times. */
    while ((got = fread(buf + len, 1, 7, stdin)) > 0) {
        len += got;
        if (cap - len < 8) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) return 99;
            buf = nb;
        }
    }
    printf("read %zu bytes, eof=%d error=%d\n", len, feof(stdin) != 0, ferror(stdin) != 0);
    fprintf(stderr, "stderr: input has %zu bytes\n", len);
    fflush(stdout);

    size_t lines = 0, words = 0, upper = 0;
    int in_word = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') lines++;
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
        if (isupper(c)) upper++;
    }
    if (len > 0 && buf[len - 1] != '\n') lines++;
    printf("lines=%zu words=%zu uppercase=%zu\n", lines, words, upper);

    /* Each line reversed, then uppercased, with stderr notes between. */
    size_t start = 0, n = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && buf[end] != '\n') end++;
        putchar('<');
        for (size_t i = end; i > start; i--) putchar(buf[i - 1]);
        printf("> [");
        for (size_t i = start; i < end; i++) putchar(toupper((unsigned char)buf[i]));
        printf("]\n");
        if (n % 2 == 1) {
            fflush(stdout);
            fprintf(stderr, "stderr: after line %zu (%zu chars)\n", n, end - start);
        }
        n++;
        start = end + 1;
    }
    fputs("done\n", stdout);
    fprintf(stderr, "stderr: exiting with %zu\n", lines % 8);
    free(buf);
    /* exit() flushes stdout. */
    exit((int)(lines % 8));
}
