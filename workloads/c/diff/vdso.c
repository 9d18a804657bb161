// emu-desc: the vDSO: AT_SYSINFO_EHDR names an ELF image listed as [vdso] in /proc/self/maps whose symbols (found as musl's __vdsosym finds them) are what the C library calls for clock_gettime, gettimeofday, time, getcpu and clock_getres; the time it gives is sane and monotonic
#define _GNU_SOURCE
#include <elf.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *strs;
static const Elf64_Sym *syms;
static const Elf64_Word *hash;
static const Elf64_Half *versym;
static const Elf64_Verdef *verdef;
static unsigned long base;

static void *vsym(const char *name, const char *ver) {
    for (Elf64_Word i = 0; i < hash[1]; i++) {
        if (!syms[i].st_shndx || strcmp(name, strs + syms[i].st_name)) continue;
        const Elf64_Verdef *d = verdef;
        for (;;) {
            if (!(d->vd_flags & VER_FLG_BASE) && (d->vd_ndx & 0x7fff) == (versym[i] & 0x7fff)) break;
            if (!d->vd_next) return 0;
            d = (const void *)((const char *)d + d->vd_next);
        }
        const Elf64_Verdaux *aux = (const void *)((const char *)d + d->vd_aux);
        if (strcmp(ver, strs + aux->vda_name)) continue;
        return (void *)(base + syms[i].st_value);
    }
    return 0;
}

int main(void) {
    unsigned long eh_addr = getauxval(AT_SYSINFO_EHDR);
    const Elf64_Ehdr *eh = (void *)eh_addr;
    printf("AT_SYSINFO_EHDR set %d, ELF %d, ET_DYN %d\n", eh_addr != 0,
           eh && !memcmp(eh->e_ident, ELFMAG, SELFMAG), eh && eh->e_type == ET_DYN);
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int listed = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo = strtoul(line, 0, 16);
        if (strstr(line, "[vdso]") && lo == eh_addr && strstr(line, " r-xp ")) listed = 1;
    }
    printf("listed as [vdso] r-xp: %d\n", listed);
    const Elf64_Phdr *ph = (void *)(eh_addr + eh->e_phoff);
    const Elf64_Dyn *dyn = 0;
    base = -1;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && base == (unsigned long)-1) base = eh_addr + ph[i].p_offset - ph[i].p_vaddr;
        if (ph[i].p_type == PT_DYNAMIC) dyn = (void *)(eh_addr + ph[i].p_offset);
    }
    for (; dyn && dyn->d_tag; dyn++) {
        void *p = (void *)(base + dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_STRTAB) strs = p;
        if (dyn->d_tag == DT_SYMTAB) syms = p;
        if (dyn->d_tag == DT_HASH) hash = p;
        if (dyn->d_tag == DT_VERSYM) versym = p;
        if (dyn->d_tag == DT_VERDEF) verdef = p;
    }
    printf("tables: strtab %d symtab %d versions %d\n", strs != 0, syms != 0, versym && verdef);
    const char *names[] = {"__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
                           "__vdso_getcpu", "clock_gettime", "__vdso_nothing"};
    for (int i = 0; i < 6; i++)
        printf("%s@LINUX_2.6: %s\n", names[i], hash && vsym(names[i], "LINUX_2.6") ? "found" : "missing");
    int (*cgt)(clockid_t, struct timespec *) = hash ? vsym("__vdso_clock_gettime", "LINUX_2.6") : 0;
    struct timespec a, b, c;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (cgt) cgt(CLOCK_MONOTONIC, &b);
    clock_gettime(CLOCK_MONOTONIC, &c);
    printf("monotonic increases through the vDSO: %d\n",
           cgt && (b.tv_sec > a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec >= a.tv_nsec)) &&
               (c.tv_sec > b.tv_sec || (c.tv_sec == b.tv_sec && c.tv_nsec >= b.tv_nsec)));
    printf("bad clock: %d\n", cgt ? cgt(12345, &b) : 0);
    struct timeval tv;
    gettimeofday(&tv, 0);
    time_t t = time(0);
    /* time() reads the coarse clock, updated at the tick: natively it can still be in
     * the previous second when gettimeofday has entered the next. */
    printf("time sane: %d\n", t > 1700000000 && t - tv.tv_sec < 5 && t + 1 >= tv.tv_sec);
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("clock_getres monotonic: %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
    int cpu = sched_getcpu();
    printf("sched_getcpu ok: %d\n", cpu >= 0 && cpu < sysconf(_SC_NPROCESSORS_CONF));
    return 0;
}
