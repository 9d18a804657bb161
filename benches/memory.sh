#!/usr/bin/env bash
# Peak host memory of a 72-core run with --stats as the run gets longer: madvise_shared
# (will-it-scale's tlb_flush2 pattern) with 72 threads, at three run lengths, for this
# build and an older one (default: fec44c6, the last commit before per-shootdown records
# were streamed to disk). Prints iterations, shootdowns and the peak resident set (KiB,
# from /usr/bin/time) of each.
#
#   benches/memory.sh [BASE_REV]
#
# Needs a release build of this tree (`cargo build --release`) and GNU time
# (/usr/bin/time, Debian package `time`). The old build is made in a git worktree under
# ${TMPDIR:-/tmp}.
set -euo pipefail
base_rev=${1:-fec44c6}
root=$(git rev-parse --show-toplevel)
cd "$root"
now=$root/target/release/emu
[ -x "$now" ] || { echo "run cargo build --release first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
wt=${TMPDIR:-/tmp}/emu-base-$base_rev
if [ ! -d "$wt" ]; then
    git worktree add --detach "$wt" "$base_rev" >/dev/null
fi
(cd "$wt" && cargo build --release --bin emu >&2)
old=$wt/target/release/emu
stats=$(mktemp -d)/stats.json
printf '%-8s %10s %11s %12s\n' build iterations shootdowns "peak KiB"
for build in before now; do
    bin=$old
    [ "$build" = now ] && bin=$now
    for iters in 50 200 800; do
        kib=$(/usr/bin/time -f %M "$bin" run --cores 72 --oracle off --stats "$stats" \
            madvise_shared 72 16 "$iters" 2>&1 >/dev/null | tail -n1)
        sd=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['totals']['shootdowns'])" "$stats")
        printf '%-8s %10s %11s %12s\n' "$build" $((72 * iters)) "$sd" "$kib"
    done
done
