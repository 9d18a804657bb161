#!/usr/bin/env bash
# Builds the libFuzzer target with coverage instrumentation on stable Rust (what
# `cargo fuzz run --sanitizer none` does) and runs it. Arguments go to libFuzzer, e.g.
#   fuzz/run.sh -max_total_time=3600 -jobs=2 -workers=2
# Crashes land in fuzz/artifacts/elf_load/; reproduce one with
#   fuzz/run.sh fuzz/artifacts/elf_load/crash-...
set -euo pipefail
cd "$(dirname "$0")"
target="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="${RUSTFLAGS:-} --cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros.
cargo build --release --target "$target" --bins
bin="target/$target/release"
if [ ! -d corpus/elf_load ] || [ -z "$(ls -A corpus/elf_load)" ]; then
  EMU_FUZZ_WRITE_SEEDS=corpus/elf_load "$bin/elf_load"
fi
mkdir -p artifacts/elf_load
exec "$bin/elf_load" -artifact_prefix=artifacts/elf_load/ -dict=elf.dict -max_len=1048576 \
  -timeout=20 -rss_limit_mb=4096 "$@" corpus/elf_load
