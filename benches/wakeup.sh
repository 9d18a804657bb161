#!/usr/bin/env bash
# Wake-up preemption: `create_join` (one thread creates and joins THREADS short-lived
# threads while another maps, touches and unmaps a page in a loop) on one simulated
# CPU, under this build and an older one (default: c12f8c1, the last commit before
# wake-up preemption), interleaved REPS times. Prints the best host wall time of each
# and the simulated time of the run (the same every time: it is deterministic).
#
#   benches/wakeup.sh [BASE_REV] [REPS] [THREADS]
#
# Needs a release build of this tree (`cargo build --release`, which also builds the
# program). The old build is made in a git worktree under ${TMPDIR:-/tmp}.
set -euo pipefail
base_rev=${1:-c12f8c1}
reps=${2:-3}
threads=${3:-1000}
root=$(git rev-parse --show-toplevel)
cd "$root"
now=$root/target/release/emu
prog=$(ls target/release/build/workloads-*/out/bin/bench/create_join.glibc | head -n1)
[ -x "$now" ] && [ -x "$prog" ] || { echo "run cargo build --release first" >&2; exit 1; }
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
old=$(old_build "$base_rev")
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT

simulated_ms() { # simulated milliseconds of a run of the build "$1"
    "$1" run --cores 1 --stats "$stats" "$prog" "$threads" >/dev/null
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["simulated_ns"] / 1e6)' "$stats"
}

b=999 n=999
for _ in $(seq "$reps"); do
    b=$(min "$b" "$(wall "$old" run --cores 1 "$prog" "$threads")")
    n=$(min "$n" "$(wall "$now" run --cores 1 "$prog" "$threads")")
done
printf '%-8s %12s %14s\n' build "host s" "simulated ms"
printf '%-8s %12.2f %14.1f\n' "$base_rev" "$b" "$(simulated_ms "$old")"
printf '%-8s %12.2f %14.1f\n' now "$n" "$(simulated_ms "$now")"
