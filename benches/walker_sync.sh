#!/usr/bin/env bash
# Page-table walker synchronisation under load: `gup_race N 8 ROUNDS` (N walker threads,
# one per CPU, each calling futex(FUTEX_WAKE) without FUTEX_PRIVATE_FLAG in a loop, so
# every call is a GUP-fast walk; the main thread maps, touches and unmaps a 2 MiB
# region ROUNDS times, retiring its PTE and PMD tables each time) at 4 to 64 simulated
# CPUs of zen3 under each --walker-sync strategy. ROUNDS shrinks above 16 CPUs
# (ROUNDS * 16 / N) to keep the 64-CPU runs short; the figures are per retire event.
# Prints, per point: the host seconds (best of REPS runs), retire events, host µs per
# retire event, simulated cycles of the run per retire event, the initiator's sync
# cycles per retire event, GUP-fast walks and host µs per walk.
#
#   benches/walker_sync.sh [ROUNDS] [REPS] [STRATEGIES] [CORES]
#
# Needs a release build of this tree (`cargo build --release`).
set -euo pipefail
rounds=${1:-300}
reps=${2:-1}
strategies=${3:-broadcast targeted rcu implied none}
cores_list=${4:-4 8 16 32 64}
root=$(git rev-parse --show-toplevel)
cd "$root"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"
emu=$(release_emu)
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT

printf '%-5s %-10s %6s %8s %8s %12s %14s %14s %10s %12s\n' cpus strategy rounds "host s" \
    retires "host us/ret" "sim cyc/ret" "sync cyc/ret" "GUP walks" "host us/walk"
for n in $cores_list; do
    r=$rounds
    [ "$n" -gt 16 ] && r=$((rounds * 16 / n))
    for s in $strategies; do
        best=999999
        for _ in $(seq "$reps"); do
            best=$(min "$best" "$(wall "$emu" run --profile zen3 --cores "$n" --walker-sync "$s" \
                --stats "$stats" gup_race "$n" 8 "$r")")
        done
        python3 - "$stats" "$n" "$s" "$r" "$best" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
n, s, r, host = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
w = v["walker_sync"]
ret = max(w["retire_events"], 1)
walks = max(w["gup_fast_walks"], 1)
print(f'{n:<5} {s:<10} {r:>6} {host:>8.2f} {w["retire_events"]:>8} {host * 1e6 / ret:>12.0f} '
      f'{v["totals"]["cycles"] / ret:>14.0f} {w["initiator_cycles"] / ret:>14.1f} '
      f'{w["gup_fast_walks"]:>10} {host * 1e6 / walks:>12.2f}')
PY
    done
done
