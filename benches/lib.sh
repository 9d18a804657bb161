# Helpers the benchmark scripts source (after setting `root` to the checkout).

# release_emu: the path of this tree's release build of emu (exits with a hint when
# there is none).
release_emu() {
    local e=$root/target/release/emu
    [ -x "$e" ] || { echo "run cargo build --release first" >&2; exit 1; }
    echo "$e"
}

# old_build REV: builds emu at REV in a git worktree under ${TMPDIR:-/tmp} (made once)
# and prints the binary's path.
old_build() {
    local wt=${TMPDIR:-/tmp}/emu-base-$1
    if [ ! -d "$wt" ]; then
        git worktree add --detach "$wt" "$1" >/dev/null
    fi
    (cd "$wt" && cargo build --release --bin emu >&2)
    echo "$wt/target/release/emu"
}

wall() { # wall seconds of one run of "$@"
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
