#!/usr/bin/env bash
# Installs what the service and its tests need on a Debian machine, once:
# Debian packages (debootstrap, SIPp, sox, espeak-ng, iproute2 for ss, openssl for test certificates,
# docker.io and docker-compose for the deployment tests, systemd for systemd-analyze), the Asterisk 22 test-bed
# chroot (asterisk/testbed.sh build, cached outside the checkout), and the
# npm dependencies (npm ci, when package-lock.json changed). Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root, or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

packages=(debootstrap sip-tester sox espeak-ng curl ca-certificates iproute2 openssl docker.io docker-compose systemd)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} > 0 )); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

$SUDO bash asterisk/testbed.sh build

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
