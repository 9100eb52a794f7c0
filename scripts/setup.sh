#!/usr/bin/env bash
# Installs what the service and its tests need on a Debian machine, once:
# Debian packages (debootstrap, SIPp, sox, espeak-ng, iproute2 for ss and
# network namespaces, openssl for test certificates, docker.io and
# docker-compose for the deployment tests, systemd for systemd-analyze,
# Kamailio for the scale-out test, which runs its own instance: the system
# service is never started), the Asterisk 22 test-bed
# chroot (asterisk/testbed.sh build, cached outside the checkout), and the
# npm dependencies (npm ci, when package-lock.json changed). Safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root, or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

packages=(debootstrap sip-tester sox espeak-ng curl ca-certificates iproute2 openssl docker.io docker-compose systemd libjemalloc2)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} > 0 )); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Kamailio: the tests run their own instance in a network namespace
# (test/support/kamailio.ts). Its package would start the system service at
# once (listening on every address, port 5060: the test bed's SIP port), so a
# policy-rc.d that refuses every service start is in place while it installs
# (unless the machine has one already), and the service is disabled after.
if ! dpkg-query -W -f='${Status}' kamailio 2>/dev/null | grep -q "install ok installed"; then
  echo "setup: installing kamailio (its system service stays off)"
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# setup.sh: no service starts while kamailio installs\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=yes
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends kamailio || status=$?
  [[ -z "$own_policy" ]] || $SUDO rm -f /usr/sbin/policy-rc.d
  [[ -z "${status:-}" ]] || exit "$status"
  if [[ -d /run/systemd/system ]]; then $SUDO systemctl disable --now kamailio.service >/dev/null 2>&1 || true; fi
  $SUDO update-rc.d kamailio disable >/dev/null 2>&1 || true
fi

$SUDO bash asterisk/testbed.sh build

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
