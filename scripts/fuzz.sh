#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each one for a while from
# the checked-in seeds (fuzz/seeds/<target>/, copied into a scratch corpus
# under target/fuzz/ so the seeds stay small).
#
#   scripts/fuzz.sh                    # every target, FUZZ_SECONDS (30) each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh packet_connection framing_length
#   FUZZ_BUILD_ONLY=1 scripts/fuzz.sh  # build the targets, run nothing
#
# Memory is capped low: -rss_limit_mb (FUZZ_RSS_MB, 1024) and
# -malloc_limit_mb (FUZZ_MALLOC_MB, 64). The targets configure limits of at
# most 1 MiB, so any allocation sized by a length field instead of a limit
# fails the run. A crash leaves its input in target/fuzz/artifacts/<target>/
# and fails the script; fuzz/README.md says how to minimise it and keep it as
# a regression seed. Needs rustup's nightly toolchain (cargo-fuzz is
# installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
rss_mb="${FUZZ_RSS_MB:-1024}"
malloc_mb="${FUZZ_MALLOC_MB:-64}"
max_len="${FUZZ_MAX_LEN:-4096}"
triple="$(rustc +nightly -vV 2>/dev/null | sed -n 's/^host: //p')"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
    triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

mapfile -t all < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^framewire')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

echo "building ${#all[@]} fuzz targets (cargo +nightly fuzz build)"
cargo +nightly fuzz build --fuzz-dir fuzz --target "$triple"

scratch=target/fuzz
failed=()
for t in "${targets[@]}"; do
    bin="fuzz/target/$triple/release/$t"
    [ -x "$bin" ] || { echo "no fuzz target $t (have: ${all[*]})"; exit 2; }
    corpus="$scratch/corpus/$t"
    artifacts="$scratch/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/seeds/$t" ]; then
        # Overwrite: a regenerated seed must replace its old bytes.
        cp fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    if [ -n "${FUZZ_BUILD_ONLY:-}" ]; then
        continue
    fi
    echo
    echo "--- $t: ${seconds}s from $(ls "$corpus" | wc -l) inputs"
    log="$scratch/$t.log"
    if "$bin" "$corpus" \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$malloc_mb" \
        -max_len="$max_len" -timeout=20 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -n 3 "$log"
        grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9/]*[a-zA-Z]*' "$log" | tail -n 1
    else
        echo "FAILED: $t (log: $log, inputs: $artifacts)"
        grep -E -A12 'panicked at|ERROR: ' "$log" | head -n 40
        failed+=("$t")
    fi
done

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
    exit 1
fi
[ -n "${FUZZ_BUILD_ONLY:-}" ] && echo "fuzz: ${#targets[@]} targets built" && exit 0
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a failure"
