#!/usr/bin/env bash
# Local stand-ins for the base images the project's Dockerfiles name, for a
# machine whose Docker engine cannot pull from an image registry (the test
# machines). Each is a debootstrapped Debian root file system imported into
# the local engine under the tag the Dockerfiles use:
#
#   debian:bookworm-slim    Debian 12 minbase (the demo callee's base)
#   node:20-bookworm-slim   the same, plus this machine's node and npm laid out
#                           as in the official image (/usr/local), user node (1000)
#   debian:sid-slim         Debian sid minbase (the Asterisk 22 image's base)
#
# The root file systems are cached in $ATP_TESTBED_DIR/docker-base (default
# /var/cache/asterisk-transcription-proxy/docker-base); a tag that already
# exists in the engine is left alone, so a second run takes a second.
# Downloads inside a build here go through a TLS-intercepting proxy: the
# stand-ins carry this machine's CA bundle (the file NODE_EXTRA_CA_CERTS names)
# and set NODE_EXTRA_CA_CERTS to it; and the Debian mirror reachable here may
# serve Release files past their Valid-Until date, which the stand-ins' apt is
# told to accept. Where images can be pulled, skip this script.
#
#   docker-stand-ins.sh [--force]     (as root; needs debootstrap and docker)
set -euo pipefail

DIR="${ATP_TESTBED_DIR:-/var/cache/asterisk-transcription-proxy}/docker-base"
CA_BUNDLE="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
FORCE=no
[[ "${1:-}" == --force ]] && FORCE=yes

say() { echo "docker-stand-ins: $*"; }
die() { echo "docker-stand-ins: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root"

has_image() { [[ $FORCE == no ]] && docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap SUITE into $DIR/NAME once (kept for later imports).
rootfs() {
  local suite="$1" tree="$DIR/$2"
  if [[ -f "$tree/.complete" ]]; then return 0; fi
  rm -rf -- "$tree"
  mkdir -p "$DIR"
  say "debootstrapping Debian $suite (minbase) into $tree"
  debootstrap --variant=minbase "$suite" "$tree" >"$DIR/$2.log" 2>&1 || {
    tail -n 20 "$DIR/$2.log" >&2
    die "debootstrap $suite failed (log: $DIR/$2.log)"
  }
  # As in Debian's official slim images: no apt caches, no documentation.
  rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* "$tree"/usr/share/doc/* "$tree"/usr/share/man/*
  touch "$tree/.complete"
}

# tar ROOTFS | docker import, with the image settings given as --change lines.
import_tree() {
  local tree="$1" tag="$2"
  shift 2
  local changes=()
  for change in "$@"; do changes+=(--change "$change"); done
  say "importing $tag"
  tar --numeric-owner --exclude=./.complete -C "$tree" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
}

# This machine's settings for downloads inside builds (see the header).
machine_settings() {
  local tree="$1"
  echo 'Acquire::Check-Valid-Until "false";' >"$tree/etc/apt/apt.conf.d/99stand-in-mirror"
  [[ -r "$CA_BUNDLE" ]] || return 0
  mkdir -p "$tree/etc/ssl/certs"
  cp "$CA_BUNDLE" "$tree/etc/ssl/certs/ca-certificates.crt"
}

debian_image() {
  local suite="$1" tag="$2"
  has_image "$tag" && return 0
  rootfs "$suite" "$suite"
  machine_settings "$DIR/$suite"
  import_tree "$DIR/$suite" "$tag" 'CMD ["bash"]' 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
}

node_image() {
  local tag="node:20-bookworm-slim"
  has_image "$tag" && return 0
  local node npm_dir tree="$DIR/node-bookworm"
  node="$(command -v node)" || die "node not found"
  npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  [[ -f "$npm_dir/package.json" ]] || die "cannot find npm's directory (got $npm_dir)"
  rootfs bookworm bookworm
  rm -rf -- "$tree"
  cp -a "$DIR/bookworm" "$tree"
  install -m 0755 "$node" "$tree/usr/local/bin/node"
  mkdir -p "$tree/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$tree/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$tree/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$tree/usr/local/bin/npx"
  chroot "$tree" groupadd --gid 1000 node
  chroot "$tree" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  machine_settings "$tree"
  local changes=('CMD ["node"]' 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "ENV NODE_VERSION=$("$node" --version | tr -d v)")
  [[ -r "$CA_BUNDLE" ]] && changes+=('ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt')
  import_tree "$tree" "$tag" "${changes[@]}"
  rm -rf -- "$tree"
}

command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh installs it)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd)"
debian_image bookworm debian:bookworm-slim
node_image
debian_image sid debian:sid-slim
say "ready: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(debian:(bookworm|sid)-slim|node:20-bookworm-slim) ' | tr '\n' ' ')"
