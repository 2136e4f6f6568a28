#!/usr/bin/env bash
# Prepare this machine for myruntime's tests. Idempotent: a second run only
# checks, and takes a second or two.
#
#   scripts/setup-test-env.sh                 packages (as root), mdbook, rootfs
#   scripts/setup-test-env.sh --rootfs-only   just the test root filesystem
#   scripts/setup-test-env.sh --packages-only just the packages and tools
#                                             (Dockerfile.dev and the Vagrantfile use this)
#   scripts/setup-test-env.sh --demo          what `make demo` needs: a few packages
#                                             (as root) and the rootfs
#
# The test root filesystem goes to $MYRUNTIME_TEST_ROOTFS (default
# .cache/test-env/rootfs). It is Alpine's minirootfs, checksum verified, when
# Alpine's mirror can be reached, else a busybox-static one: both work, and
# ROOTFS_SOURCE=alpine|busybox forces one.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
rootfs=${MYRUNTIME_TEST_ROOTFS:-$here/.cache/test-env/rootfs}
source_pref=${ROOTFS_SOURCE:-auto}

# Debian packages the tests and tools use, with what each is for.
# (Keep this list the one source: Dockerfile.dev and the Vagrantfile run this script.)
packages=(
  busybox-static   # the offline test rootfs
  ca-certificates  # HTTPS for the Alpine download and crates.io
  curl             # the Alpine download
  file             # checks that the probe is static
  gcc libc6-dev    # linking, and libc.a for the static probe
  iproute2         # ip(8), used by `make check` and the network suite
  nftables         # nft(8): the bridge network's NAT and forwarding rules (stage 09)
  iptables         # a host whose FORWARD policy is DROP, as docker leaves it (stage 09)
  passt            # pasta(1): an ordinary user's container network (stage 09)
  util-linux       # unshare(1) for `make check`, setpriv(1) for the rootless tests
  uidmap           # newuidmap/newgidmap: rootless containers with more than one id
  passwd           # useradd/userdel: the rootless tests make a user of their own
  mount            # losetup: a block device of the tests' own for the I/O limits
  docker-registry  # a real registry server on loopback for the image tests
  skopeo           # pushes the images the image tests build
  apache2-utils    # htpasswd, for the registry that asks for credentials
  shellcheck       # lints the scripts
  ruby             # parses the Vagrantfile (ruby -c)
  python3 python3-venv  # runs Docker's Dockerfile parser, to lint Dockerfile.dev
)
# What `make demo` needs of the list above: the offline rootfs and an image
# in a registry of its own, so that pull-and-run works with no internet.
demo_packages=(busybox-static ca-certificates curl docker-registry skopeo python3 nftables)
tools=${MYRUNTIME_TOOLS:-$HOME/.cache/myruntime}
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
# On a host that is not pure cgroup v2, `make test` also boots a v2 kernel
# under qemu (scripts/vm-test): these are its parts.
vm_packages=(
  linux-image-amd64  # a kernel whose cgroups are pure v2 once booted
  qemu-system-x86    # the emulator (software emulation: nested KVM hangs)
  kmod               # modprobe, for the loop module inside the guest
)
virtme_ng_version=1.42
mdbook_version=0.5.4
alpine_version=3.20.3
alpine_url=https://dl-cdn.alpinelinux.org/alpine/v${alpine_version%.*}/releases/x86_64/alpine-minirootfs-${alpine_version}-x86_64.tar.gz
alpine_sha256=d4e6fd67dcf75e40c451560ac7265166c2b72a0f38ddc9aae756a7de3d1efa0c

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

pure_v2() { [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; }

# install_packages [PACKAGE...]: those given, or every package the tests
# need (and the VM job's, on a host that is not pure cgroup v2).
install_packages() {
  local missing=() wanted=("$@")
  if [ $# -eq 0 ]; then
    wanted=("${packages[@]}")
    pure_v2 || wanted+=("${vm_packages[@]}")
  fi
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "debian packages: all present"
    return
  fi
  if ! is_root; then
    say "missing debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install -y ${missing[*]}"
    return
  fi
  say "installing debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local log
  log=$(mktemp)
  apt-get update -qq
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "apt-get install failed"
  fi
  rm -f "$log"
  say "installed: ${missing[*]}"
}

install_python_tools() {
  # dockerfile: Docker's own Dockerfile parser (buildkit's, compiled into the
  # wheel), to lint Dockerfile.dev without a Docker engine. In a venv of its
  # own, so the system's Python is left alone.
  local venv=$tools/venv
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import dockerfile' 2>/dev/null; then
    say "python dockerfile parser: present ($venv)"
    return
  fi
  say "installing the python dockerfile parser into $venv"
  mkdir -p "$tools"
  python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check dockerfile==3.4.0 \
    || die "pip install dockerfile failed; it is needed to lint Dockerfile.dev"
}

install_virtme_ng() {
  # virtme-ng boots a kernel with the host's filesystem shared: the cgroup
  # v2 job of `make test` on hosts that are not pure v2.
  pure_v2 && return
  local venv=$tools/venv
  if [ -x "$venv/bin/vng" ]; then
    say "virtme-ng: present"
    return
  fi
  say "installing virtme-ng $virtme_ng_version into $venv (for the cgroup v2 VM job)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "virtme-ng==$virtme_ng_version" \
    || die "pip install virtme-ng failed; it is needed for the cgroup v2 VM job"
}

install_mdbook() {
  local mdbook
  mdbook=$(command -v mdbook || echo "$cargo_bin/mdbook")
  if [ -x "$mdbook" ] && "$mdbook" --version | grep -q "v$mdbook_version"; then
    say "mdbook $mdbook_version: present"
    return
  fi
  # Without default features: only `mdbook build` is needed, and the build
  # takes about a minute instead of five.
  say "installing mdbook $mdbook_version (cargo install, about a minute)"
  cargo install --quiet --locked --no-default-features --version "$mdbook_version" mdbook
  say "installed: $("$cargo_bin/mdbook" --version)"
}

# --- the test root filesystem ------------------------------------------------

rootfs_ready() {
  [ -x "$rootfs/bin/sh" ] && [ -f "$rootfs/.myruntime-rootfs" ]
}

alpine_rootfs() {
  local tmp tarball
  tmp=$(mktemp -d)
  tarball=$tmp/alpine.tar.gz
  if ! curl -fsSL --connect-timeout 5 --max-time 120 -o "$tarball" "$alpine_url" 2>/dev/null; then
    rm -rf "$tmp"
    return 1
  fi
  if ! echo "$alpine_sha256  $tarball" | sha256sum -c --quiet - >/dev/null 2>&1; then
    rm -rf "$tmp"
    die "alpine minirootfs checksum mismatch: refusing to use $alpine_url"
  fi
  mkdir -p "$tmp/rootfs"
  tar -xzf "$tarball" -C "$tmp/rootfs"
  echo "alpine $alpine_version (sha256 $alpine_sha256)" >"$tmp/rootfs/.myruntime-rootfs"
  install_rootfs "$tmp/rootfs"
  rm -rf "$tmp"
}

find_static_busybox() {
  local candidate
  for candidate in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    if file -L "$candidate" 2>/dev/null | grep -q 'statically linked\|static-pie'; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

busybox_rootfs() {
  local busybox tmp dir applet
  if ! find_static_busybox >/dev/null && is_root; then
    say "installing busybox-static for the offline rootfs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null; }
  fi
  busybox=$(find_static_busybox) \
    || die "no static busybox: install busybox-static (apt-get install busybox-static), or let the Alpine download through"
  tmp=$(mktemp -d)
  dir=$tmp/rootfs
  mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var,run}
  chmod 1777 "$dir/tmp"
  cp "$busybox" "$dir/bin/busybox"
  # One link per applet, where busybox says each belongs (/bin/sh, /usr/bin/env, ...).
  while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    mkdir -p "$dir/$(dirname "$applet")"
    ln -sf /bin/busybox "$dir/$applet"
  done < <("$dir/bin/busybox" --list-full)
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  echo "busybox $("$busybox" | head -1 | awk '{print $2}') (from $busybox)" >"$dir/.myruntime-rootfs"
  install_rootfs "$dir"
  rm -rf "$tmp"
}

# Move a finished rootfs into place in one rename, so that an interrupted
# setup never leaves a half-made one where the tests look.
install_rootfs() {
  mkdir -p "$(dirname "$rootfs")"
  rm -rf "$rootfs.old"
  [ -e "$rootfs" ] && mv "$rootfs" "$rootfs.old"
  mv "$1" "$rootfs"
  rm -rf "$rootfs.old"
}

prepare_rootfs() {
  if rootfs_ready; then
    say "test rootfs: $rootfs ($(cat "$rootfs/.myruntime-rootfs"))"
    return
  fi
  case "$source_pref" in
    alpine) alpine_rootfs || die "cannot download $alpine_url" ;;
    busybox) busybox_rootfs ;;
    auto)
      if alpine_rootfs; then :; else
        say "alpine's mirror cannot be reached: building the rootfs from busybox-static"
        busybox_rootfs
      fi
      ;;
    *) die "ROOTFS_SOURCE must be alpine, busybox or auto, not '$source_pref'" ;;
  esac
  say "test rootfs ready: $rootfs ($(cat "$rootfs/.myruntime-rootfs"))"
}

main() {
  case "${1:-}" in
    --rootfs-only)
      prepare_rootfs
      ;;
    --demo)
      install_packages "${demo_packages[@]}"
      prepare_rootfs
      ;;
    --packages-only)
      install_packages
      install_python_tools
      install_virtme_ng
      install_mdbook
      ;;
    "")
      install_packages
      install_python_tools
      install_virtme_ng
      install_mdbook
      prepare_rootfs
      ;;
    *) die "unknown option '$1'; use --rootfs-only, --packages-only, --demo, or nothing" ;;
  esac
}

main "$@"
