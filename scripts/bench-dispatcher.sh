#!/usr/bin/env bash
# What the Kamailio dispatcher itself costs per call (docs/scale-out.md,
# "Sizing"): the shipped asterisk/kamailio/kamailio.cfg in a network
# namespace, two SIPp answering machines as "cells" in two others, and a SIPp
# caller placing short calls through it (INVITE, 100, 180, 200, ACK, BYE, 200:
# what a real call costs the dispatcher; RTP never passes through it). Reports
# Kamailio's CPU time (all its processes, from /proc) per call and its memory.
#
#   sudo bash scripts/bench-dispatcher.sh [CALLS_PER_SECOND] [SECONDS]    (default 100 20)
#
# Needs root, iproute2, kamailio and sipp (scripts/setup.sh installs both).
# Uses 203.0.113.0/24 on veths inside namespaces it creates and deletes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATE="${1:-100}"
SECONDS_TO_RUN="${2:-20}"
CALLS=$((RATE * SECONDS_TO_RUN))
TAG="atpbench$$"
WORK="$(mktemp -d)"
NS=("$TAG-edge" "$TAG-c1" "$TAG-c2")
ADDR=(203.0.113.10 203.0.113.11 203.0.113.12)

cleanup() {
  local ns pid
  for ns in "${NS[@]}" "$TAG-sw"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  sleep 0.2
  for ns in "${NS[@]}" "$TAG-sw"; do ip netns delete "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$TAG-sw"
ip -n "$TAG-sw" link add br0 type bridge
ip -n "$TAG-sw" link set br0 up
for i in 0 1 2; do
  ip netns add "${NS[$i]}"
  ip -n "${NS[$i]}" link set lo up
  ip link add name eth0 netns "${NS[$i]}" type veth peer name "p$i" netns "$TAG-sw"
  ip -n "$TAG-sw" link set dev "p$i" master br0 up
  ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev eth0
  ip -n "${NS[$i]}" link set dev eth0 up
done

printf '1 sip:%s:5060 0 0\n1 sip:%s:5060 0 0\n' "${ADDR[1]}" "${ADDR[2]}" >"$WORK/dispatcher.list"
# The cells: SIPp answering machines (180, 200 with the Record-Route the
# dispatcher added, as Asterisk sends it; answer the BYE). No media.
cat >"$WORK/cell.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cell stand-in">
  <recv request="INVITE" />
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=cell 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio 9 RTP/AVP 0
      a=inactive

  ]]></send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>
EOF
for i in 1 2; do
  (ip netns exec "${NS[$i]}" sipp -sf "$WORK/cell.xml" -i "${ADDR[$i]}" -p 5060 -nostdin -m "$CALLS" >/dev/null 2>&1 &)
done
# Probes off (the stand-ins do not answer OPTIONS), and one UDP worker:
# with several, a 180 and the 200 right behind it can be relayed by two
# workers at once and arrive swapped, which a phone ignores but a scripted
# SIPp caller aborts on. Everything else as shipped.
(ip netns exec "${NS[0]}" kamailio -f asterisk/kamailio/kamailio.cfg -DD -E -Y "$WORK" \
  -A "LISTEN=udp:${ADDR[0]}:5060" -A "DISPATCHER_LIST=\"$WORK/dispatcher.list\"" \
  -A "CTL_SOCKET=\"unix:$WORK/ctl\"" -A PROBE_INTERVAL_S=0 -A CHILDREN=1 >"$WORK/kamailio.log" 2>&1 &)
for _ in $(seq 50); do kamcmd -s "unix:$WORK/ctl" core.version >/dev/null 2>&1 && break; sleep 0.1; done

cpu_ticks() { # utime + stime of every process in the namespace
  local pid total=0
  for pid in $(ip netns pids "${NS[0]}"); do
    [[ "$(cat /proc/$pid/comm)" == kamailio ]] || continue
    total=$((total + $(awk '{print $14 + $15}' /proc/$pid/stat)))
  done
  echo "$total"
}
pss_kib() {
  local pid total=0
  for pid in $(ip netns pids "${NS[0]}"); do
    [[ "$(cat /proc/$pid/comm)" == kamailio ]] || continue
    total=$((total + $(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)))
  done
  echo "$total"
}

# The caller: test/sipp/caller-via-proxy.xml (ACK and BYE through the
# proxy's Record-Route), held 100 ms, 1 s of silence as its "tone".
head -c 8000 /dev/zero | tr '\0' '\377' >"$WORK/tone.ulaw"
before="$(cpu_ticks)"
start="$(date +%s.%N)"
(cd "$WORK" && ip netns exec "${NS[0]}" sipp -sf "$OLDPWD/test/sipp/caller-via-proxy.xml" -s 4567 \
  -i "${ADDR[0]}" -p 5070 -mi "${ADDR[0]}" -mp 40000 -r "$RATE" -m "$CALLS" -l $((RATE * 2)) -d 100 \
  -nostdin -timeout $((SECONDS_TO_RUN * 3)) -timeout_error \
  -trace_err -error_file "$WORK/errors.log" "${ADDR[0]}:5060" >/dev/null 2>"$WORK/sipp.err") || {
  echo "bench-dispatcher: the caller failed:" >&2
  head -40 "$WORK/errors.log" >&2; grep -v INFO "$WORK/kamailio.log" | tail -20 >&2
  exit 1
}
end="$(date +%s.%N)"
after="$(cpu_ticks)"
awk -v calls="$CALLS" -v rate="$RATE" -v start="$start" -v end="$end" -v ticks="$((after - before))" \
  -v hz="$(getconf CLK_TCK)" -v pss="$(pss_kib)" 'BEGIN {
    elapsed = end - start; cpu = ticks / hz
    printf "calls: %d at %d/s in %.1f s, none failed\n", calls, rate, elapsed
    printf "Kamailio CPU: %.2f s in all, %.0f µs per call, %.1f %% of a core at %d calls/s\n", cpu, cpu * 1e6 / calls, cpu * 100 / elapsed, rate
    printf "Kamailio memory (PSS of all its processes): %.0f MiB\n", pss / 1024
  }'
