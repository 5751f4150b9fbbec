#!/usr/bin/env bash
# wrk-middleware.sh measures what the usage middleware costs as a client feels it: requests per
# second served by a trivial handler over loopback, bare, wrapped in httpsnoop.CaptureMetrics, and
# wrapped in meterbill's middleware over a meter that discards (the middleware and recorder alone)
# and over the embedded meter. Server and client are pinned to separate cores (taskset), the
# server with GOMAXPROCS=1. Modes are interleaved over ROUNDS rounds and the median of each is
# reported against the bare handler's, so the shared machine's noise hits every mode alike.
#
#	bash scripts/wrk-middleware.sh            # 3 rounds of 5 s per mode: about 90 s
#	ROUNDS=5 DURATION=10s bash scripts/wrk-middleware.sh
#
# Needs wrk (Debian's package) and taskset, and 2 cores. Listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
MODES=(${MODES:-bare capturemetrics floor meterbill-discard meterbill-memory})

for tool in wrk taskset; do
  command -v "$tool" >/dev/null || { echo "wrk-middleware: $tool is required" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "wrk-middleware: needs 2 cores (server and client on separate ones)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/loadserver" ./internal/cmd/loadserver

port=$(( 20000 + RANDOM % 20000 ))
addr="127.0.0.1:${port}"

# run_mode MODE: serves MODE, loads it for DURATION, prints requests/s; the server's own report
# (recorded and delivered requests) goes to $work/MODE.log.
run_mode() {
  GOMAXPROCS=1 taskset -c 0 "$work/loadserver" -addr "$addr" -mode "$1" >> "$work/$1.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then break; fi
    sleep 0.05
  done
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s "http://$addr/" > /dev/null # warm up
  local rps
  rps=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://$addr/" | awk '/^Requests\/sec/ {print $2}')
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "wrk-middleware: server $1 failed:" >&2; cat "$work/$1.log" >&2; exit 1; }
  server_pid=
  echo "$rps"
}

declare -A results
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${MODES[@]}"; do
    rps=$(run_mode "$mode")
    results[$mode]+="$rps "
    printf 'round %d  %-18s %10s req/s\n' "$round" "$mode" "$rps"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bare=$(echo "${results[bare]}" | median)
echo
printf '%-18s %12s %9s\n' mode "median req/s" "of bare"
for mode in "${MODES[@]}"; do
  m=$(echo "${results[$mode]}" | median)
  printf '%-18s %12.0f %8.1f%%\n' "$mode" "$m" "$(awk -v m="$m" -v b="$bare" 'BEGIN {print 100*m/b}')"
done
for mode in meterbill-discard meterbill-memory; do
  echo "$mode: $(grep '^recorder:' "$work/$mode.log" | tail -n 1)"
done
