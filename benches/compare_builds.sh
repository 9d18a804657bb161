#!/usr/bin/env bash
# Throughput kept by this build relative to an older one (default: 31eb382, the last
# commit before the memory-system issue), on the slowdown benchmark's programs, with 1
# and 2 simulated cores (a single-threaded program on two cores runs the coherence
# directory). Each (build, program, cores) is timed REPS times, the two builds
# interleaved so that host noise hits both alike; the best time of each is compared.
#
#   benches/compare_builds.sh [BASE_REV] [REPS]
#
# Needs a release build of this tree (`cargo build --release`, which also builds the
# programs). The old build is made in a git worktree under ${TMPDIR:-/tmp}.
set -euo pipefail
base_rev=${1:-31eb382}
reps=${2:-3}
root=$(git rev-parse --show-toplevel)
cd "$root"
now=$root/target/release/emu
bin=$(dirname "$(ls target/release/build/workloads-*/out/bin/bench/sieve.glibc | head -n1)")
[ -x "$now" ] && [ -d "$bin" ] || { echo "run cargo build --release first" >&2; exit 1; }
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
old=$(old_build "$base_rev")


printf '%-6s %-11s %9s %9s %6s\n' cores program "before s" "now s" kept
for cores in 1 2; do
    while read -r name args; do
        b=999 n=999
        for _ in $(seq "$reps"); do
            # shellcheck disable=SC2086
            b=$(min "$b" "$(wall "$old" run --cores "$cores" "$bin/$name.glibc" $args)")
            # shellcheck disable=SC2086
            n=$(min "$n" "$(wall "$now" run --cores "$cores" "$bin/$name.glibc" $args)")
        done
        printf '%-6s %-11s %9.2f %9.2f %5.0f%%\n' "$cores" "$name" "$b" "$n" \
            "$(awk -v b="$b" -v n="$n" 'BEGIN { print 100 * b / n }')"
    done <<'LIST'
sieve 16000000 2
crc32 16777216 4
sort 2000000 2
sha_like 8388608 3
matmul_int 512 1
LIST
done
