#!/usr/bin/env bash
# Provision what booting kernels under test needs, on a Debian-family host, as root. Idempotent:
# whatever is already there is kept. Used by .ci/run; a newcomer runs it once.
#   - qemu-system-x86 and qemu-system-arm (QEMU for x86_64 and arm64 guests);
#   - the aarch64 cross linker and the rustup target, for the static arm64 guest forkbench;
#   - what `cargo xtask bisect --kernel-tree` needs to build kernels with its default build:
#     make, gcc, flex, bison, bc, perl, ccache, and the libelf and openssl headers (objtool,
#     signing tools);
#   - Debian's 6.1 and 6.12 cloud kernels for x86_64 and arm64, through `cargo xtask kernels
#     fetch` (a private apt configuration; the host's apt sources are not changed for them).
# When this host's qemu-utils came from bookworm-backports (as on the development VMs), the
# bookworm qemu-system packages conflict with it; then they come from bookworm-backports too,
# through a sources entry that exists only while apt-get runs (removed on any exit).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v qemu-system-aarch64 >/dev/null || need_pkgs+=(qemu-system-arm)
command -v aarch64-linux-gnu-gcc >/dev/null || need_pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
for tool in make gcc flex bison bc perl ccache; do
    command -v "$tool" >/dev/null || need_pkgs+=("$tool")
done
[[ -e /usr/include/gelf.h ]] || need_pkgs+=(libelf-dev)
[[ -e /usr/include/openssl/opensslv.h ]] || need_pkgs+=(libssl-dev)

if ((${#need_pkgs[@]})); then
    if ! command -v apt-get >/dev/null; then
        echo "provision-guests: error: need ${need_pkgs[*]} and this host has no apt-get; install them with its package manager" >&2
        exit 2
    fi
    if [[ $(id -u) != 0 ]]; then
        echo "provision-guests: error: installing ${need_pkgs[*]} needs root" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/tmp/forkbench-apt.log 2>&1; then
        # The usual cause: qemu-utils from bookworm-backports breaks bookworm's qemu-system-common.
        . /etc/os-release
        # The host's own Debian archive (its apt sources), never one named here.
        mirror=$(cargo xtask kernels mirror)
        tmp=/etc/apt/sources.list.d/forkbench-provision-backports.sources
        cleanup() {
            rm -f "$tmp"
            apt-get update -qq || true
        }
        trap cleanup EXIT
        printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" "$VERSION_CODENAME" >"$tmp"
        apt-get update -qq
        if ! apt-get install -y -qq --no-install-recommends -t "$VERSION_CODENAME-backports" "${need_pkgs[@]}" >>/tmp/forkbench-apt.log 2>&1; then
            echo "provision-guests: error: apt-get could not install ${need_pkgs[*]} (log: /tmp/forkbench-apt.log)" >&2
            exit 2
        fi
        cleanup
        trap - EXIT
    fi
fi

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi

cargo xtask kernels fetch --release 6.1 --release 6.12 --arch x86_64 --arch arm64
