#!/usr/bin/env bash
# PostgreSQL restart during load: the receiver on the PostgreSQL inbox takes
# deliveries while the local PostgreSQL server is stopped and started again.
# While it is down, deliveries must be answered 503 (nothing acknowledged
# that was not recorded); after it is back, the receiver must recover on its
# own (200s again, the worker drains); every event acknowledged with 200 must
# end `succeeded`.
#
#   TOWER_WEBHOOKS_PG_RESTART=1 scripts/pg_restart.sh [SECONDS]   # load, default 40
#
# It restarts the machine's shared PostgreSQL cluster (pg_ctlcluster
# --skip-systemctl-redirect <version> main stop -m fast / start), which breaks
# every other client for a few seconds, hence the opt-in variable. It always
# starts the cluster again on exit and waits for pg_isready.
#
# Environment: PG_DOWN_AT (seconds into the load, default 10), PG_DOWN_FOR
# (default 8), PGR_PORT (default 18092), PGR_ADMIN_PORT (the receiver's admin
# listener, unused here, default 18192), TOWER_WEBHOOKS_PG_URL (default
# postgres://postgres@127.0.0.1:5432/test; a fresh database is created next to
# it and dropped), KEEP=1 keeps the work directory. Only 127.0.0.1 is used.
set -euo pipefail

if [[ "${TOWER_WEBHOOKS_PG_RESTART:-}" != 1 ]]; then
    echo "skipped: this restarts the shared PostgreSQL server; set TOWER_WEBHOOKS_PG_RESTART=1 to run it" >&2
    exit 0
fi

seconds=${1:-40}
down_at=${PG_DOWN_AT:-10}
down_for=${PG_DOWN_FOR:-8}
port=${PGR_PORT:-18092}
admin_port=${PGR_ADMIN_PORT:-18192}
pg_url=${TOWER_WEBHOOKS_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
secret=pg_restart_secret
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-pgrestart.XXXXXX")
base="http://127.0.0.1:$port"
version=$(ls /etc/postgresql | sort -V | tail -n 1)
db="tw_pgrestart_$$"
receiver_pid=
sender_pid=
probe_pid=

pg_start() {
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 && return 0
        sleep 0.5
    done
    echo "PostgreSQL is not ready after 30 s" >&2
    return 1
}

cleanup() {
    for pid in "$probe_pid" "$sender_pid"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    done
    if [[ -n "$receiver_pid" ]]; then
        kill "$receiver_pid" 2>/dev/null || true
        wait "$receiver_pid" 2>/dev/null || true
    fi
    pg_isready -q -h 127.0.0.1 || pg_start || true
    psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    echo "PostgreSQL: $(pg_isready -h 127.0.0.1)" >&2
    if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building the receiver and the sender (release)..." >&2
(cd "$root" && cargo build --release --quiet --example receiver --example crash_sender --example send)
bin="$root/target/release/examples"

pg_isready -q -h 127.0.0.1 || { echo "PostgreSQL is not running" >&2; exit 1; }
psql -q "$pg_url" -c "CREATE DATABASE $db" >/dev/null
database_url="${pg_url%%\?*}"
database_url="${database_url%/*}/$db"
count_open() {
    psql -qtA "$database_url" -c \
        "SELECT count(*) FROM tower_webhooks_inbox WHERE status IN ('pending', 'processing')"
}

BIND="127.0.0.1:$port" ADMIN_BIND="127.0.0.1:$admin_port" WEBHOOK_SECRET=$secret \
    RECEIVER_MODE=inbox INBOX_STORE=postgres \
    DATABASE_URL="$database_url" RUST_LOG=warn \
    "$bin/receiver" >"$work/handled.log" 2>"$work/receiver.err" &
receiver_pid=$!
for _ in $(seq 1 200); do
    curl -sf "$base/health" >/dev/null 2>&1 && break
    kill -0 "$receiver_pid" 2>/dev/null || { cat "$work/receiver.err" >&2; exit 1; }
    sleep 0.05
done

# A probe: every 0.2 s, one fresh signed delivery through the real sender
# (its own id prefix), logged as "<ms since start> <status>".
probe() {
    local started i=0 status
    started=$(date +%s%N)
    while :; do
        i=$((i + 1))
        status=$(cd "$root" && timeout 3 "$bin/send" --url "$base/webhooks/provider" \
            --secret $secret --id "probe-$i" 2>/dev/null | awk '/^status:/ {print $2; exit}') || true
        echo "$((($(date +%s%N) - started) / 1000000)) ${status:-none} probe-$i" >>"$work/probe.log"
        sleep 0.2
    done
}
probe &
probe_pid=$!

"$bin/crash_sender" --url "$base/webhooks/provider" --secret $secret --concurrency 8 \
    --duration "$seconds" --acked "$work/acked.txt" --prefix pgr >"$work/sender.json" 2>"$work/sender.err" &
sender_pid=$!
load_started=$(date +%s%N)
ms() { echo $((($(date +%s%N) - load_started) / 1000000)); }

sleep "$down_at"
stop_ms=$(ms)
pg_ctlcluster --skip-systemctl-redirect "$version" main stop -m fast
stopped_ms=$(ms)
sleep "$down_for"
start_ms=$(ms)
pg_start
ready_ms=$(ms)

sender_status=0
wait "$sender_pid" || sender_status=$?
sender_pid=
kill "$probe_pid" 2>/dev/null || true
wait "$probe_pid" 2>/dev/null || true
probe_pid=

# Drain, then reconcile.
best=$(count_open)
stalled=0
while ((best > 0 && stalled < 60)); do
    sleep 1
    open=$(count_open)
    if ((open < best)); then best=$open; stalled=0; else stalled=$((stalled + 1)); fi
done
sort -u "$work/acked.txt" >"$work/acked.sorted"
awk '$2 == 200 {print $3}' "$work/probe.log" | sort -u >>"$work/acked.sorted"
sort -u -o "$work/acked.sorted" "$work/acked.sorted"
psql -qtA "$database_url" -c \
    "SELECT event_id FROM tower_webhooks_inbox WHERE namespace = 'generic' AND status = 'succeeded'" \
    | sort >"$work/succeeded.txt"
acked=$(wc -l <"$work/acked.sorted")
lost=$(comm -23 "$work/acked.sorted" "$work/succeeded.txt" | wc -l)

# The probe's view of the outage (its clock started slightly before the load's).
probe_503=$(awk '$2 == 503' "$work/probe.log" | wc -l)
probe_other=$(awk '$2 != 200 && $2 != 503' "$work/probe.log" | wc -l)
first_503=$(awk '$2 == 503 {print $1; exit}' "$work/probe.log")
last_503=$(awk '$2 == 503 {t = $1} END {print t}' "$work/probe.log")
first_200_after=$(awk -v t="${last_503:-0}" '$2 == 200 && $1 > t {print $1; exit}' "$work/probe.log")

echo "PostgreSQL restart under load (${seconds}s, cluster $version main):"
echo "  stop issued at ${stop_ms} ms, down at ${stopped_ms} ms; start issued at ${start_ms} ms, pg_isready at ${ready_ms} ms"
echo "  probe: $(wc -l <"$work/probe.log") deliveries, $probe_503 answered 503 (first at ${first_503:-none} ms, last at ${last_503:-none} ms), $probe_other neither 200 nor 503; first 200 after the outage at ${first_200_after:-none} ms"
echo "  sender: $(cat "$work/sender.json")"
echo "  acknowledged: $acked events; lost (acknowledged, not succeeded): $lost; still open after the drain: $best"
failed=0
((probe_503 > 0)) || { echo "FAIL: no 503 observed while PostgreSQL was down" >&2; failed=1; }
[[ -n "$first_200_after" ]] || { echo "FAIL: no 200 after PostgreSQL came back" >&2; failed=1; }
((lost == 0)) || { echo "FAIL: $lost acknowledged events lost:" >&2; comm -23 "$work/acked.sorted" "$work/succeeded.txt" | head >&2; failed=1; }
((best == 0)) || { echo "FAIL: $best events still pending or processing" >&2; failed=1; }
((sender_status == 0)) || { echo "FAIL: the sender exited with $sender_status" >&2; failed=1; }
((failed == 0)) && echo "OK: 503 while down, recovered after the restart, none lost"
exit "$failed"
