#!/usr/bin/env bash
# User-space instructions the server spends per record, counted by callgrind: repeatable where
# wall-clock figures on a shared 2-core machine drift by ±20% (docs/performance.md).
#
#   scripts/instructions-per-record.sh [BINARY] [PHASE] [SECONDS]
#   PHASE: put-record (16 connections) or put-records (500 × 1 KiB, 2 in flight)
#
# Runs BINARY (default target/release/kinesin) under valgrind's callgrind, zeroes the counters
# once it answers, drives it with `kinesin bench` for SECONDS, dumps, and divides the
# instructions by the records written. Needs valgrind and curl.
set -euo pipefail
BIN=${1:-target/release/kinesin}
PHASE=${2:-put-record}
SECONDS_=${3:-4}
PORT=${KINESIN_CG_PORT:-4601}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$BIN" serve \
    --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --no-throttle >"$WORK/server.log" 2>&1 &
VG=$!
for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.2
done
callgrind_control -z "$VG" >/dev/null 2>&1
"$BIN" bench --endpoint "http://127.0.0.1:$PORT" --phases "$PHASE" --seconds "$SECONDS_" \
    --put-record-connections 16 --put-records-in-flight 2 >"$WORK/bench.json" 2>/dev/null
callgrind_control -d "$VG" >/dev/null 2>&1
sleep 1
kill "$VG"
wait "$VG" 2>/dev/null || true
python3 - "$WORK/cg.$VG.1" "$WORK/bench.json" <<'PY'
import json, sys
total = next(int(l.split()[1]) for l in open(sys.argv[1]) if l.startswith(("summary:", "totals:")))
records = next(iter(json.load(open(sys.argv[2]))["phases"].values()))["records"]
print(f"records {records}  instructions {total:,}  per record {total / records:,.0f}")
PY
