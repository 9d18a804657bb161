#!/usr/bin/env bash
# Lazy-TLB mm references under load: `pingpong_threads` (pairs of threads of one
# process bouncing a byte over pipes, one thread per CPU, so every round trip takes each
# CPU from user to idle and back) at 4 to 64 simulated CPUs under each --lazy-mm policy.
# Prints, per point: context switches, simulated switches per second, mm_count atomics
# per switch and their mean transfer cycles, and the host time per context switch (best
# of REPS runs).
#
#   benches/lazy_mm.sh [ROUNDS] [REPS] [POLICIES] [CORES]
#
# Needs a release build of this tree (`cargo build --release`).
set -euo pipefail
rounds=${1:-500}
reps=${2:-1}
policies=${3:-refcount shootdown shootdown-all}
cores_list=${4:-4 8 16 32 64}
root=$(git rev-parse --show-toplevel)
cd "$root"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
emu=$(release_emu)
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT

printf '%-6s %-14s %10s %14s %12s %14s %10s %14s\n' cpus policy switches "switches/s sim" \
    "atomics/sw" "xfer cyc/atom" "lazy IPIs" "host us/switch"
for n in $cores_list; do
    for p in $policies; do
        best=999999
        for _ in $(seq "$reps"); do
            best=$(min "$best" "$(wall "$emu" run --cores "$n" --lazy-mm "$p" --stats "$stats" \
                pingpong_threads "$n" "$rounds")")
        done
        python3 - "$stats" "$n" "$p" "$best" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
n, p, host = sys.argv[2], sys.argv[3], float(sys.argv[4])
sw = sum(c["context_switches"] for c in v["per_core"])
l = v["lazy_mm"]
ns = v["totals"]["simulated_ns"]
at = l["mm_count_atomics"]
print(f'{n:<6} {p:<14} {sw:>10} {sw * 1e9 / max(ns, 1):>14.0f} {at / max(sw, 1):>12.3f} '
      f'{l["mm_count_transfer_cycles"] / max(at, 1):>14.1f} {l["shootdown_ipis"]:>10} '
      f'{host * 1e6 / max(sw, 1):>14.2f}')
PY
    done
done
