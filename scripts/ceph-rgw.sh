#!/usr/bin/env bash
# A throwaway single-node Ceph cluster (mon + memstore osd + radosgw) on loopback:
# a strict, real S3 endpoint for the test suite (verifies SigV4, expiry, conditional writes).
# Recipe and its pitfalls: shared/S3-TESTING.md.
#
# Usage:
#   scripts/ceph-rgw.sh install          apt-get the daemons (root; for CI and fresh machines)
#   scripts/ceph-rgw.sh start DIR        start a cluster under DIR (created; our own files in it
#                                        are replaced); prints the S3 endpoint on stdout and writes
#                                        DIR/endpoint and DIR/env (SESSMIG_TEST_S3_* lines, usable
#                                        as the suite's "external" target: `set -a; . DIR/env`)
#   scripts/ceph-rgw.sh stop DIR         stop radosgw, then the osd, then the mon (by pid file;
#                                        SIGTERM, ≈2 s each)
#   scripts/ceph-rgw.sh kill DIR         the same order with SIGKILL: instant; the data is in RAM
#                                        and thrown away anyway
#   scripts/ceph-rgw.sh stop-rgw DIR [--kill]   stop radosgw only (simulate the S3 server dying;
#                                        --kill: SIGKILL, no graceful close of connections)
#   scripts/ceph-rgw.sh start-rgw DIR    start radosgw again, same port, same data
#   scripts/ceph-rgw.sh status DIR       which daemons run
#   scripts/ceph-rgw.sh watch PID DIR    wait until process PID is gone, then kill the cluster and
#                                        remove its files (a safety net for test processes that
#                                        die without stopping their cluster); returns early when
#                                        DIR/ceph.conf disappears
#
# Env: CEPH_MON_PORT, CEPH_RGW_PORT (default: free random ports), CEPH_RGW_ACCESS_KEY,
#      CEPH_RGW_SECRET_KEY (default: random), CEPH_START_TIMEOUT (s, default 60).
# Memory: memstore keeps objects in RAM (≈150 MB RSS idle); keep test data small.
set -euo pipefail

die() { echo "ceph-rgw.sh: $*" >&2; exit 1; }

need_bins() {
  local b missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if ((${#missing[@]})); then
    die "missing ${missing[*]}; run: scripts/ceph-rgw.sh install (Debian: ceph-mon ceph-osd radosgw ceph-common)"
  fi
}

# true when something accepts TCP connections on 127.0.0.1:$1
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

uuid() {
  if command -v uuidgen >/dev/null 2>&1; then uuidgen; else cat /proc/sys/kernel/random/uuid; fi
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

logs_tail() {
  local f
  for f in "$D"/log/*; do
    [[ -f $f ]] || continue
    echo "---- $f (tail)" >&2
    tail -n 20 "$f" >&2
  done
}

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "ceph-rgw.sh: timed out after ${secs}s waiting for $what" >&2
      logs_tail
      return 1
    fi
    sleep 0.05
  done
}

pid_of() { # daemon name (mon.a, osd.0, client.rgw.a) -> pid if alive
  local f="$D/run/$1.pid" pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ -n $pid ]] && alive "$pid" && echo "$pid"
}

# kill -0 alone is fooled by zombies (a container whose pid 1 does not reap)
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(awk "{print \$3}" "/proc/$1/stat" 2>/dev/null) || return 0
  [[ $st != Z ]]
}

stop_daemon() { # name [timeout] [signal]
  local name=$1 secs=${2:-30} sig=${3:-TERM} pid deadline
  pid=$(pid_of "$name") || { rm -f "$D/run/$name.pid"; return 0; }
  kill -"$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + secs))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      echo "ceph-rgw.sh: $name (pid $pid) ignored SIG$sig for ${secs}s; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.05
  done
  rm -f "$D/run/$name.pid"
}

C() { echo "$D/ceph.conf"; }
cephq() { timeout 10 ceph -c "$D/ceph.conf" --connect-timeout 5 "$@"; }

osd_up() { cephq osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
rgw_listening() { port_open "$(cat "$D/rgw_port")"; }

start_rgw() {
  local port
  port=$(cat "$D/rgw_port")
  if pid_of client.rgw.a >/dev/null; then return 0; fi
  port_open "$port" && die "port $port is taken; radosgw cannot bind it"
  radosgw -c "$D/ceph.conf" -n client.rgw.a </dev/null >>"$D/log/client.rgw.a.stderr" 2>&1 ||
    { logs_tail; die "radosgw failed to start"; }
  wait_for "$TIMEOUT" "radosgw on 127.0.0.1:$port" rgw_listening
}

cmd_start() {
  need_bins
  local mon_port rgw_port fsid osd_uuid ak sk t0 id
  t0=$(date +%s.%N)
  if [[ -f $D/ceph.conf ]]; then
    # a previous cluster in this folder: stop it, then replace our own files only
    cmd_stop_quiet KILL
    remove_files
  fi
  mkdir -p "$D/mon" "$D/osd/ceph-0" "$D/run" "$D/log"
  # a start that fails half-way leaves nothing running
  trap 'rc=$?; if ((rc != 0)); then cmd_stop_quiet KILL; fi' EXIT
  mon_port=${CEPH_MON_PORT:-$(free_port)}
  rgw_port=${CEPH_RGW_PORT:-$(free_port)}
  [[ $rgw_port != "$mon_port" ]] || rgw_port=$(free_port)
  echo "$mon_port" >"$D/mon_port"
  echo "$rgw_port" >"$D/rgw_port"
  fsid=$(uuid)
  cat >"$D/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# without it radosgw hangs 300 s with auth=none
ms mon client mode = crc secure
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
[mon]
mon data = $D/mon/\$cluster-\$id
# rgw's first start drops from ~9 s to <1 s
paxos propose interval = 0.05
[osd]
osd data = $D/osd/\$cluster-\$id
osd objectstore = memstore
# RAM-backed; not a hard cap: keep test data small
memstore device bytes = 1073741824
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
EOF
  monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$D/monmap" >/dev/null
  ceph-mon -c "$D/ceph.conf" -i a --mkfs --monmap "$D/monmap" >"$D/log/mon-mkfs.out" 2>&1 ||
    { logs_tail; die "ceph-mon --mkfs failed"; }
  ceph-mon -c "$D/ceph.conf" -i a </dev/null >>"$D/log/mon.a.stderr" 2>&1 || { logs_tail; die "ceph-mon failed to start"; }
  wait_for "$TIMEOUT" "ceph-mon on 127.0.0.1:$mon_port" cephq mon stat
  osd_uuid=$(uuid)
  id=$(cephq osd new "$osd_uuid")
  [[ $id == 0 ]] || die "expected osd id 0, got '$id'"
  ceph-osd -c "$D/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$D/log/osd-mkfs.out" 2>&1 ||
    { logs_tail; die "ceph-osd --mkfs failed"; }
  ceph-osd -c "$D/ceph.conf" -i 0 </dev/null >>"$D/log/osd.0.stderr" 2>&1 || { logs_tail; die "ceph-osd failed to start"; }
  wait_for "$TIMEOUT" "osd.0 up" osd_up
  start_rgw
  ak=${CEPH_RGW_ACCESS_KEY:-AK$(rand_hex 9 | tr a-f A-F)}
  sk=${CEPH_RGW_SECRET_KEY:-$(rand_hex 20)}
  timeout "$TIMEOUT" radosgw-admin -c "$D/ceph.conf" user create --uid=test --display-name=test \
    --access-key="$ak" --secret="$sk" >"$D/log/user-create.json" 2>"$D/log/user-create.err" ||
    { cat "$D/log/user-create.err" >&2; die "radosgw-admin user create failed"; }
  echo "http://127.0.0.1:$rgw_port" >"$D/endpoint"
  cat >"$D/env" <<EOF
SESSMIG_TEST_S3_ENDPOINT=http://127.0.0.1:$rgw_port
SESSMIG_TEST_S3_ACCESS_KEY_ID=$ak
SESSMIG_TEST_S3_SECRET_ACCESS_KEY=$sk
SESSMIG_TEST_S3_REGION=us-east-1
SESSMIG_TEST_S3_PATH_STYLE=1
EOF
  echo "ceph-rgw.sh: up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')s (mon :$mon_port, rgw :$rgw_port, dir $D)" >&2
  trap - EXIT
  echo "http://127.0.0.1:$rgw_port"
}

cmd_stop_quiet() { # signal
  # order matters: radosgw first, then the osd, then the mon (else radosgw takes ~120 s to exit)
  local sig=${1:-TERM}
  stop_daemon client.rgw.a 30 "$sig"
  stop_daemon osd.0 30 "$sig"
  stop_daemon mon.a 30 "$sig"
}

remove_files() { # ours only: DIR itself may be the caller's
  rm -rf "$D/mon" "$D/osd" "$D/run" "$D/log" "$D/monmap" "$D/ceph.conf" "$D/endpoint" "$D/env" \
    "$D/mon_port" "$D/rgw_port"
}

cmd_watch() { # pid
  local pid=$1
  while kill -0 "$pid" 2>/dev/null && [[ -f $D/ceph.conf ]]; do sleep 0.5; done
  [[ -f $D/ceph.conf ]] || return 0
  cmd_stop_quiet KILL
  remove_files
  rmdir "$D" 2>/dev/null || true
}

cmd_status() {
  local n
  for n in mon.a osd.0 client.rgw.a; do
    if pid_of "$n" >/dev/null; then echo "$n running (pid $(pid_of "$n"))"; else echo "$n stopped"; fi
  done
}

TIMEOUT=${CEPH_START_TIMEOUT:-60}
cmd=${1:-}
case $cmd in
  install)
    export DEBIAN_FRONTEND=noninteractive
    if [[ $(id -u) != 0 ]]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
    ;;
  watch)
    [[ -n ${2:-} && -n ${3:-} ]] || die "usage: $0 watch PID DIR"
    [[ -d $3 ]] || exit 0
    D=$(abs_dir "$3")
    cmd_watch "$2"
    ;;
  start | stop | kill | stop-rgw | start-rgw | status)
    [[ -n ${2:-} ]] || die "usage: $0 $cmd DIR"
    D=$(abs_dir "$2")
    case $cmd in
      start) cmd_start ;;
      stop) [[ -f $D/ceph.conf ]] || exit 0; cmd_stop_quiet TERM ;;
      kill) [[ -f $D/ceph.conf ]] || exit 0; cmd_stop_quiet KILL ;;
      stop-rgw) if [[ ${3:-} == --kill ]]; then stop_daemon client.rgw.a 30 KILL; else stop_daemon client.rgw.a 30; fi ;;
      start-rgw) need_bins; [[ -f $D/ceph.conf ]] || die "no cluster in $D"; start_rgw ;;
      status) cmd_status ;;
    esac
    ;;
  *)
    sed -n "2,/^set -euo/{/^#/p}" "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
