#!/usr/bin/env bash
# The tour, from a fresh Debian machine: installs etcd when missing, starts a
# throwaway local server, runs etcd-blocking/examples/tour.rs against it
# (keys, CAS, TTL, directories, cluster info), and stops the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "tour.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
scripts/install-etcd.sh >/dev/null
export ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
cargo build --quiet -p etcd-blocking --example tour
cargo build --quiet -p etcd-tests --bin with-etcd
cargo run --quiet -p etcd-tests --bin with-etcd -- cargo run --quiet -p etcd-blocking --example tour --
