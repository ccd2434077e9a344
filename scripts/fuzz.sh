#!/usr/bin/env bash
# Fuzzes the protocol core: builds every cargo-fuzz target under fuzz/ and
# runs each for SECONDS (default 60), past findings (fuzz/regressions/) first.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz when missing. cargo-fuzz passes nightly-only flags;
# RUSTC_BOOTSTRAP=1 lets a stable toolchain take them. The targets are safe
# Rust, so they are built without a sanitizer by default (faster builds and
# runs); FUZZ_SANITIZER=address turns AddressSanitizer on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"

cargo fuzz build -s "$sanitizer"

for target in "${targets[@]}"; do
    if compgen -G "regressions/$target/*" >/dev/null; then
        echo "== $target: past findings"
        cargo fuzz run -s "$sanitizer" "$target" regressions/"$target"/* 2>&1 | grep -E "^Executed|panicked" || true
    fi
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    echo "== $target: ${seconds}s"
    log="$(mktemp)"
    if ! cargo fuzz run -s "$sanitizer" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $target found a failure; its input is under fuzz/artifacts/$target/" >&2
        rm -f "$log"
        exit 1
    fi
    grep -E "^Done [0-9]+ runs|stat::number_of_executed_units|cov:.*DONE" "$log" | tail -n 2
    rm -f "$log"
done
