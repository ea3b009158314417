#!/usr/bin/env bash
# Opt-in end-to-end kernel bisection (issue 14, 5(c)): real kernel builds, real boots.
#
# Makes a git tree of Debian's linux-source-6.12 with six revisions: the source as shipped, then
# five small commits of which the third makes fork() copy present PTEs one at a time (the batch
# length forced to 1 in copy_present_ptes, so a PTE-mapped THP is copied like order-0 pages).
# Then runs
#   cargo xtask bisect --kernel-tree TREE --good <base> --bad HEAD --arch x86_64
# with the default build (tinyconfig + the shipped fragment, bzImage, out of tree, one moving
# worktree) and the default measurement under TCG (exact: pte-order9, 512M, 10 forks counted
# in instructions, one boot per revision), and leaves its
# log under results/bisect/. Takes ~10 min for the first build on 2 cores, ~1 min per later one.
#
# Needs root only to apt-get install the build dependencies when they are missing. The source
# comes through a private apt configuration under $FORKBENCH_E2E_DIR (default
# ~/.cache/forkbench/e2e): the host's sources are neither read nor changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ws=$PWD
work=${FORKBENCH_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/forkbench/e2e}
tree=$work/linux-6.12
mkdir -p "$work"

need=()
for tool in flex bison bc perl make gcc ccache; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
[ -e /usr/include/gelf.h ] || need+=(libelf-dev)
[ -e /usr/include/openssl/opensslv.h ] || need+=(libssl-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing the kernel build dependencies: ${need[*]}"
  apt-get install -y -q "${need[@]}" >/dev/null
fi

if [ ! -d "$tree/.git" ]; then
  apt_root=$work/apt
  mkdir -p "$apt_root"/etc/sources.list.d "$apt_root"/etc/preferences.d \
    "$apt_root"/lists/partial "$apt_root"/cache/archives/partial
  mirror=$(cargo xtask kernels mirror) # the host's own Debian archive, from its apt sources
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror stable main" \
    >"$apt_root/etc/sources.list"
  : >"$apt_root/etc/preferences"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_root/etc/sources.list"
    -o "Dir::Etc::SourceParts=$apt_root/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$apt_root/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$apt_root/etc/preferences.d"
    -o "Dir::State::Lists=$apt_root/lists" -o "Dir::Cache=$apt_root/cache"
    -o Debug::NoLocking=1)
  deb=$(ls "$work"/linux-source-6.12_*_all.deb 2>/dev/null | tail -n 1 || true)
  if [ -z "$deb" ]; then
    echo "fetching linux-source-6.12 from Debian stable ..."
    apt-get "${apt_opts[@]}" update -q >/dev/null 2>&1
    (cd "$work" && apt-get "${apt_opts[@]}" download linux-source-6.12 >/dev/null 2>&1)
    deb=$(ls "$work"/linux-source-6.12_*_all.deb | tail -n 1)
  fi
  echo "unpacking $(basename "$deb") ..."
  rm -rf "$work/pkg" "$tree.partial"
  dpkg-deb -x "$deb" "$work/pkg"
  mkdir -p "$tree.partial"
  tar -xaf "$work"/pkg/usr/src/linux-source-6.12.tar.* -C "$tree.partial" --strip-components=1
  rm -rf "$work/pkg"
  (
    cd "$tree.partial"
    git init -q
    git config user.email forkbench@example.invalid
    git config user.name "forkbench e2e"
    git config commit.gpgsign false
    # -f: Debian's .gitignore ignores everything at the top level of its source package.
    git add -A -f
    git commit -q -m "Debian linux-source $(basename "$deb" | cut -d_ -f2)"
    note() { printf '%s\n' "$2" >>"$1"; git add -f "$1"; git commit -q -m "$3"; }
    note Documentation/forkbench-e2e.txt "A neutral change: documentation only." \
      "Documentation: add a note for the forkbench end-to-end bisection"
    note mm/memory.c "/* forkbench e2e: a comment-only change that rebuilds memory.o */" \
      "mm/memory: a comment-only change"
    # The regression: every present PTE is copied on its own. In 6.12 the batch is sized by
    # folio_pte_batch() only for large folios with max_nr > 1; clamping max_nr to 1 after
    # copy_present_ptes()'s declarations takes the per-PTE path for every folio.
    grep -q '^copy_present_ptes(' mm/memory.c
    sed -i '/^copy_present_ptes(/,/^\tint err, nr;$/{/^\tint err, nr;$/a\
\n\tmax_nr = 1;\t/* forkbench e2e: no fork batching */
}' mm/memory.c
    grep -q 'forkbench e2e: no fork batching' mm/memory.c
    git commit -q -am "mm: copy present PTEs one at a time during fork"
    note Documentation/forkbench-e2e.txt "Another neutral change." \
      "Documentation: a second neutral change"
    note mm/memory.c "/* forkbench e2e: another comment-only change */" \
      "mm/memory: another comment-only change"
  )
  mv "$tree.partial" "$tree"
fi

good=$(git -C "$tree" rev-list --max-parents=0 HEAD)
echo "bisecting $tree: good $good (the shipped source), bad HEAD"
git -C "$tree" log --oneline
# TCG by default (exact: instruction counts, one boot per revision), also where KVM works;
# FORKBENCH_E2E_ACCEL=auto or kvm for the timed path.
exec cargo xtask bisect --kernel-tree "$tree" --good "$good" --bad HEAD --arch x86_64 \
  --accel "${FORKBENCH_E2E_ACCEL:-tcg}" --out "$ws/results/bisect" "$@"
