#!/usr/bin/env bash
# Local Asterisk 22 test bed for asterisk-transcription-proxy.
#
# Asterisk runs from a Debian sid chroot (debootstrap, cached in
# $ATP_TESTBED_DIR/chroot, default /var/cache/asterisk-transcription-proxy),
# with the configuration of asterisk/conf/ (plus the shipped FreePBX files of
# asterisk/freepbx/, which conf/extensions.conf includes), listening on 127.0.0.1:
# SIP 5060/udp, HTTP/ARI 8088, RTP 10000-10999.
#
#   testbed.sh build | start | stop | status | logfile | log [N] | cli "command"
#
# More Asterisks from the same chroot, beside the test bed ("cells", for tests
# that need several hosts; see test/support/asterisk-cell.ts):
#
#   testbed.sh cell-init DIR [NAME]    make a cell directory (DIR: a path inside
#                                      the chroot, e.g. /var/tmp/atp-cells/cell1)
#   testbed.sh cell-run DIR [NETNS]    run its Asterisk in the foreground
#   testbed.sh cell-cli DIR "command"  asterisk -rx on that Asterisk
#   testbed.sh cell-remove DIR         delete the directory (Asterisk stopped)
#
# A cell reads only DIR/etc (its asterisk.conf names its own directories:
# control socket and pid in DIR/run, logs in DIR/log, astdb in DIR/db, spool
# in DIR/spool), runs inside network namespace NETNS when given, and mounts
# /dev and /proc into the chroot in a mount namespace of its own: the host's
# mounts, the test bed's /etc/asterisk and its control socket are never
# touched, `stop` cannot pull /dev from under a running cell, and the cell's
# mounts vanish with its process, however it ends.
#
# The test bed itself as a cell (a second end-to-end shard, run inside a
# network namespace of its own: scripts/test.sh): with ATP_TESTBED_CELL=DIR
# set, start | stop | status | logfile | log | cli act on the cell in DIR
# instead, with the test bed's configuration; its Asterisk runs in the caller's
# network namespace, on that namespace's 127.0.0.1 (the same ports as ever).
#
# WARNING: while the test bed runs, the HOST's /dev is bind-mounted at
# CHROOT/dev. Never delete the chroot by hand without running `stop` first
# (and checking /proc/mounts): `rm -rf` would delete the host's device nodes.
# This script refuses to delete anything with a mount below it.
#
# Needs root (mount, chroot, debootstrap).
set -euo pipefail

DIR="${ATP_TESTBED_DIR:-/var/cache/asterisk-transcription-proxy}"
ROOT="$DIR/chroot"
CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/conf"
FREEPBX_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/freepbx"
LOG="$ROOT/var/log/asterisk/full"
PIDFILE="$ROOT/run/asterisk/asterisk.pid"
ARI_URL="http://127.0.0.1:8088/ari/asterisk/info"
ARI_AUTH="transcription-proxy:change-me-ari-secret"

die() { echo "testbed: $*" >&2; exit 1; }
say() { echo "testbed: $*"; }

# Mount points at or below $1, in /proc/mounts order (\040 etc. left escaped).
mounts_under() {
  local base
  base="$(realpath -m "$1")"
  awk -v b="$base" '$2 == b || index($2, b "/") == 1 { print $2 }' /proc/mounts
}

# rm -rf $1, but only if nothing is mounted at or below it.
safe_rm() {
  local m
  m="$(mounts_under "$1")"
  [[ -z "$m" ]] || die "refusing to delete $1: still mounted below it:
$m
(run '$0 stop' or unmount these first)"
  say "removing $1"
  rm -rf -- "$1"
}

build() {
  if [[ -x "$ROOT/usr/sbin/asterisk" ]]; then return 0; fi
  [[ ! -e "$ROOT" ]] || die "$ROOT exists but has no usr/sbin/asterisk; remove it (after checking /proc/mounts)"
  command -v debootstrap >/dev/null || { apt-get update && apt-get install -y debootstrap; }
  mkdir -p "$DIR"
  if [[ -e "$ROOT.partial" ]]; then safe_rm "$ROOT.partial"; fi   # stale: an interrupted build
  say "debootstrapping Debian sid with Asterisk into $ROOT.partial"
  debootstrap --variant=minbase --include=asterisk,asterisk-modules sid "$ROOT.partial"
  [[ -z "$(mounts_under "$ROOT.partial")" ]] || die "debootstrap left mounts below $ROOT.partial"
  mv "$ROOT.partial" "$ROOT"
  say "built $ROOT"
}

# Pid of the Asterisk daemon running from this chroot, if any.
daemon_pid() {
  local pid root
  root="$(realpath -m "$ROOT")"
  [[ -r "$PIDFILE" ]] || return 1
  pid="$(tr -dc 0-9 <"$PIDFILE")"
  [[ -n "$pid" && -d /proc/$pid ]] || return 1
  [[ "$(cat /proc/$pid/comm 2>/dev/null)" == asterisk ]] || return 1
  [[ "$(readlink /proc/$pid/root 2>/dev/null)" == "$root" ]] || return 1
  echo "$pid"
}

rx() { chroot "$ROOT" asterisk -rx "$1"; }

ari_ready() {
  local i code
  for ((i = 0; i < 60; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -u "$ARI_AUTH" "$ARI_URL" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.5
  done
  echo "testbed: ARI at $ARI_URL did not answer 200 within 30 s (last: $code)" >&2
  return 1
}

unmount_all() {
  local m
  # reverse order: deepest / latest first
  for m in $(mounts_under "$ROOT" | tac); do
    m="$(printf '%b' "${m//\\/\\0}")"
    umount "$m" 2>/dev/null || { say "umount $m failed, lazy unmount"; umount -l "$m"; }
  done
  rm -f "$DIR/mounted"
}

stop_daemon() {
  local pid i
  pid="$(daemon_pid)" || return 0
  timeout 10 chroot "$ROOT" asterisk -rx "core stop now" >/dev/null 2>&1 || true
  for ((i = 0; i < 100; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    say "Asterisk (pid $pid) did not stop, sending TERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  fi
  if [[ -d /proc/$pid ]]; then
    say "sending KILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PIDFILE"
}

start_failed() {
  trap - EXIT
  echo "testbed: start failed; last lines of $LOG:" >&2
  tail -n 40 "$LOG" >&2 2>/dev/null || true
  stop_daemon
  local m
  for m in $(tac "$DIR/mounted" 2>/dev/null); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  rm -f "$DIR/mounted"
}

start() {
  if daemon_pid >/dev/null; then
    say "Asterisk from $ROOT is already running (pid $(daemon_pid))"
    ari_ready || exit 1
    say "ARI ready"
    return 0
  fi
  build
  trap 'start_failed' EXIT
  : >"$DIR/mounted"
  if ! mountpoint -q "$ROOT/dev"; then
    mount --bind /dev "$ROOT/dev"
    echo "$ROOT/dev" >>"$DIR/mounted"
  fi
  if ! mountpoint -q "$ROOT/proc"; then
    mount -t proc proc "$ROOT/proc"
    echo "$ROOT/proc" >>"$DIR/mounted"
  fi
  local version
  version="$(chroot "$ROOT" asterisk -V)"
  if [[ ! "$version" =~ ^Asterisk\ 22\. ]]; then
    echo "testbed: $ROOT has '$version', need Asterisk 22.x" >&2
    false
  fi
  find "$ROOT/etc/asterisk" -mindepth 1 -delete
  # The shipped FreePBX files (extensions_custom.conf, ...) as users install
  # them, then the test bed's own conf/, which wins on a name clash.
  cp "$FREEPBX_CONF"/*.conf "$ROOT/etc/asterisk/"
  cp "$CONF"/* "$ROOT/etc/asterisk/"
  mkdir -p "$ROOT/run/asterisk" "$ROOT/var/log/asterisk"
  rm -f "$PIDFILE"
  say "starting $version"
  echo "===== testbed start $(date '+%F %T') =====" >>"$LOG"
  chroot "$ROOT" asterisk -F 9>&-   # the daemon must not inherit our lock
  local i
  for ((i = 0; i < 30; i++)); do
    timeout 30 chroot "$ROOT" asterisk -rx "core waitfullybooted" >/dev/null 2>&1 && break
    sleep 1
  done
  ((i < 30)) || { echo "testbed: Asterisk did not boot within 30 s" >&2; false; }
  ari_ready
  trap - EXIT
  say "Asterisk running (pid $(daemon_pid)), ARI ready at http://127.0.0.1:8088/ari"
}

stop() {
  stop_daemon
  unmount_all
  say "stopped; nothing mounted under $ROOT"
}

# --- cells -----------------------------------------------------------------

cell_dir_ok() {
  [[ "$1" =~ ^/[A-Za-z0-9._/-]+$ && "$1" != *..* && "$1" != / ]] \
    || die "a cell directory is an absolute path inside the chroot, without '..': $1"
  case "$1" in
    /etc | /etc/* | /run | /run/* | /var/run* | /var/lib/asterisk* | /var/log/asterisk* | /var/spool/asterisk* | /usr | /usr/* | /dev* | /proc*)
      die "refusing $1 as a cell directory: the test bed uses it" ;;
  esac
}

cell_init() {
  local dir="$1" name="${2:-}" sub
  [[ -n "$name" ]] || name="$(basename "$dir")"
  cell_dir_ok "$dir"
  [[ -x "$ROOT/usr/sbin/asterisk" ]] || die "no test-bed chroot at $ROOT: run '$0 build' first"
  for sub in etc run log spool db cache; do mkdir -p "$ROOT$dir/$sub"; done
  # The test bed's configuration as a starting point (the caller replaces the
  # files it needs), except asterisk.conf, which is the cell's own.
  cp "$FREEPBX_CONF"/*.conf "$ROOT$dir/etc/"
  cp "$CONF"/* "$ROOT$dir/etc/"
  # No "(!)" after [directories]: that makes the section a template, which
  # Asterisk ignores; the cell would then use the test bed's run directory.
  cat >"$ROOT$dir/etc/asterisk.conf" <<EOF
; Asterisk cell "$name" (testbed.sh cell-init).
[directories]
astetcdir => $dir/etc
astrundir => $dir/run
astlogdir => $dir/log
astspooldir => $dir/spool
astdbdir => $dir/db
astcachedir => $dir/cache
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => /var/lib/asterisk
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astsbindir => /usr/sbin

[options]
verbose = 3
debug = 0
highpriority = yes
systemname = $name
EOF
  echo "$ROOT$dir"
}

# Pid of the cell's Asterisk, if it runs.
cell_pid() {
  local pid
  pid="$(tr -dc 0-9 2>/dev/null <"$ROOT$1/run/asterisk.pid")" || return 1
  [[ -n "$pid" && -d /proc/$pid && "$(cat /proc/$pid/comm 2>/dev/null)" == asterisk ]] || return 1
  # a zombie (killed, not yet reaped by its parent) no longer runs
  ! grep -q '^State:[[:space:]]*Z' /proc/$pid/status 2>/dev/null || return 1
  echo "$pid"
}

cell_run() {
  local dir="$1" netns="${2:-}" conf
  cell_dir_ok "$dir"
  conf="$ROOT$dir/etc/asterisk.conf"
  [[ -f "$conf" ]] || die "no $conf: run '$0 cell-init $dir' first"
  # Without its own run directory the cell would take over the test bed's
  # control socket (/run/asterisk/asterisk.ctl).
  grep -qx '\[directories\]' "$conf" && grep -qx "astrundir => $dir/run" "$conf" \
    || die "$conf needs a [directories] section (without '(!)') with 'astrundir => $dir/run'"
  if cell_pid "$dir" >/dev/null; then die "the Asterisk of cell $dir already runs (pid $(cell_pid "$dir"))"; fi
  rm -f "$ROOT$dir/run/asterisk.pid" "$ROOT$dir/run/asterisk.ctl"
  # Each command execs the next: the pid that started this script ends up as
  # Asterisk's own (-f: foreground), so its caller can signal it directly.
  # shellcheck disable=SC2016 # expanded by the inner sh
  local inner='mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" && exec chroot "$1" asterisk -C "$2" -f'
  local wrap=()
  [[ -z "$netns" ]] || wrap=(ip netns exec "$netns")
  exec "${wrap[@]}" unshare --mount --propagation private sh -c "$inner" cell "$ROOT" "$dir/etc/asterisk.conf" 9>&-
}

cell_remove() {
  local dir="$1"
  cell_dir_ok "$dir"
  [[ -e "$ROOT$dir" ]] || return 0
  if cell_pid "$dir" >/dev/null; then die "the Asterisk of cell $dir still runs (pid $(cell_pid "$dir"))"; fi
  safe_rm "$ROOT$dir" >/dev/null
}

# --- the test bed as a cell (ATP_TESTBED_CELL) --------------------------------

CELL="${ATP_TESTBED_CELL:-}"
if [[ -n "$CELL" ]]; then
  LOG="$ROOT$CELL/log/full"
  daemon_pid() { cell_pid "$CELL"; }
  rx() { chroot "$ROOT" asterisk -C "$CELL/etc/asterisk.conf" -rx "$1"; }
  start() {
    if cell_pid "$CELL" >/dev/null; then
      ari_ready || exit 1
      return 0
    fi
    build
    [[ -f "$ROOT$CELL/etc/asterisk.conf" ]] && rm -rf -- "$ROOT$CELL/etc" || true
    cell_init "$CELL" "testbed-$(basename "$CELL")" >/dev/null
    echo "===== testbed cell start $(date '+%F %T') =====" >>"$LOG"
    # In the background, detached from this script, in the caller's network namespace.
    setsid bash "${BASH_SOURCE[0]}" cell-run "$CELL" </dev/null >>"$LOG.console" 2>&1 9>&- &
    local i
    for ((i = 0; i < 300; i++)); do
      cell_pid "$CELL" >/dev/null && rx "core waitfullybooted" >/dev/null 2>&1 && break
      sleep 0.1
    done
    cell_pid "$CELL" >/dev/null || { echo "testbed: the cell's Asterisk did not start; $LOG.console:" >&2; tail -n 20 "$LOG.console" >&2; exit 1; }
    ari_ready
    say "Asterisk cell $CELL running (pid $(cell_pid "$CELL")), ARI ready at http://127.0.0.1:8088/ari"
  }
  stop() {
    local pid i
    if pid="$(cell_pid "$CELL")"; then
      rx "core stop now" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do cell_pid "$CELL" >/dev/null || break; sleep 0.1; done
      if pid="$(cell_pid "$CELL")"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.3; fi
    fi
    say "cell $CELL stopped"
  }
fi

cmd="${1:-}"
[[ "$cmd" == logfile ]] && { echo "$LOG"; exit 0; }
[[ "$cmd" == log ]] && { tail -n "${2:-200}" "$LOG"; exit 0; }
[[ $EUID -eq 0 ]] || die "must run as root"
case "$cmd" in
  build|start|stop)
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock -w 120 9 || die "another testbed.sh holds $DIR/.lock"
    "$cmd"
    ;;
  status)
    if pid="$(daemon_pid)"; then say "running (pid $pid)"; exit 0; fi
    say "not running"; exit 3
    ;;
  cell-init)
    [[ $# -ge 2 ]] || die "usage: $0 cell-init DIR [NAME]"
    cell_init "$2" "${3:-}"
    ;;
  cell-run)
    [[ $# -ge 2 ]] || die "usage: $0 cell-run DIR [NETNS]"
    cell_run "$2" "${3:-}"
    ;;
  cell-cli)
    [[ $# -ge 3 ]] || die "usage: $0 cell-cli DIR \"command\""
    cell_dir_ok "$2"
    cell_pid "$2" >/dev/null || die "the Asterisk of cell $2 is not running"
    chroot "$ROOT" asterisk -C "$2/etc/asterisk.conf" -rx "$3"
    ;;
  cell-remove)
    [[ $# -ge 2 ]] || die "usage: $0 cell-remove DIR"
    cell_remove "$2"
    ;;
  cli)
    [[ $# -ge 2 ]] || die "usage: $0 cli \"command\""
    daemon_pid >/dev/null || die "Asterisk is not running"
    shift; rx "$*"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
