#!/usr/bin/env bash
# Provision what running the suite's LAVA jobs on this machine needs, on a Debian-family host,
# as root. Idempotent: whatever is already there is kept. Used by .ci/run; a newcomer runs it
# once (after tools/provision-guests.sh, which brings QEMU and the kernels).
#   - lava-dispatcher (`lava-run`: one job on a local device, no server);
#   - LAVA's device-type templates (qemu.jinja2 ...), which ship in lava-server: without the
#     server installed, its package is downloaded and only the templates are unpacked, into
#     $XDG_CACHE_HOME/forkbench/lava/device-types (else ~/.cache/...), where `cargo xtask lava`
#     finds them;
#   - with --server: lava-server, lavacli and PostgreSQL too, for tools/lava-server-e2e.sh.
# Packages come from the host's own apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."

server=0
case "${1:-}" in
    --server) server=1 ;;
    "") ;;
    *)
        echo "provision-lava: error: unknown argument '$1' (expected --server or nothing)" >&2
        exit 2
        ;;
esac

stop_pg=""
tmp=""
cleanup() {
    if [[ -n $stop_pg ]]; then pg_ctlcluster $stop_pg stop || true; fi
    if [[ -n $tmp ]]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

need_pkgs=()
command -v lava-run >/dev/null || need_pkgs+=(lava-dispatcher)
if ((server)); then
    [[ -x /usr/bin/lava-server ]] || need_pkgs+=(lava-server)
    command -v lavacli >/dev/null || need_pkgs+=(lavacli)
    command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
fi

apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "provision-lava: error: need $* and this host has no apt-get; install them with its package manager" >&2
        exit 2
    fi
    if [[ $(id -u) != 0 ]]; then
        echo "provision-lava: error: installing $* needs root" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The packages' maintainer scripts want systemd; without it they still install (their
    # daemons are started by hand, see tools/lava-server-e2e.sh).
    if ! apt-get install -y -qq --no-install-recommends "$@" >/tmp/forkbench-lava-apt.log 2>&1; then
        echo "provision-lava: error: apt-get could not install $* (log: /tmp/forkbench-lava-apt.log)" >&2
        exit 2
    fi
}

if ((${#need_pkgs[@]})); then
    if ((server)) && [[ " ${need_pkgs[*]} " == *" lava-server "* ]]; then
        # lava-server's maintainer script creates its database: PostgreSQL must be up (no
        # systemd here to start it), and is stopped again if it was down.
        command -v pg_ctlcluster >/dev/null || apt_install postgresql
        read -r ver cluster status < <(pg_lsclusters --no-header | awk 'NR == 1 {print $1, $2, $4}')
        if [[ ${status:-} != online ]]; then
            pg_ctlcluster "$ver" "$cluster" start
            stop_pg="$ver $cluster"
        fi
    fi
    apt_install "${need_pkgs[@]}"
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/forkbench/lava"
templates="$cache/device-types"
if [[ -f /usr/share/lava-server/device-types/qemu.jinja2 ]]; then
    echo "LAVA device-type templates: /usr/share/lava-server/device-types (lava-server)"
elif [[ -f $templates/qemu.jinja2 ]]; then
    echo "LAVA device-type templates: $templates"
else
    if ! command -v apt-get >/dev/null; then
        echo "provision-lava: error: need lava-server's device-type templates and this host has no apt-get" >&2
        exit 2
    fi
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download lava-server >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$tmp" && apt-get download lava-server >/dev/null 2>&1)
    } || {
        echo "provision-lava: error: apt-get download lava-server failed (for its device-type templates)" >&2
        exit 2
    }
    dpkg-deb -x "$tmp"/lava-server_*.deb "$tmp/x"
    mkdir -p "$cache"
    rm -rf "$templates.new"
    cp -r "$tmp/x/usr/share/lava-server/device-types" "$templates.new"
    mv "$templates.new" "$templates"
    echo "LAVA device-type templates: $templates"
fi
echo "lava-run: $(command -v lava-run)"
