#!/usr/bin/env bash
# Crash test: the receiver (SQLite inbox) under load is killed with SIGKILL every
# few seconds and restarted on the same WEBHOOK_DB. At the end, every event the
# sender saw acknowledged with 200 must be `succeeded` after the final restart.
#
#   scripts/crash.sh [SECONDS]      # load duration, default 60
#
# Environment: CRASH_PORT (default 18091), CRASH_ADMIN_PORT (the audit trail,
# default 18191), CRASH_EVERY (seconds between kills,
# default 4), CRASH_CONCURRENCY (default 8), HANDLER_DELAY_MS (default 0),
# KEEP=1 keeps the work directory. Only 127.0.0.1 is used.
#
# The load comes from examples/crash_sender.rs, which logs the id of every
# acknowledged event (the general load generator reports counts, not ids).
set -euo pipefail

seconds=${1:-60}
port=${CRASH_PORT:-18091}
admin_port=${CRASH_ADMIN_PORT:-18191}
every=${CRASH_EVERY:-4}
concurrency=${CRASH_CONCURRENCY:-8}
secret=crash_script_secret
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-crash.XXXXXX")
base="http://127.0.0.1:$port"
admin="http://127.0.0.1:$admin_port"
receiver_pid=
sender_pid=

cleanup() {
    [[ -n "$sender_pid" ]] && kill "$sender_pid" 2>/dev/null || true
    [[ -n "$receiver_pid" ]] && kill -9 "$receiver_pid" 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building the receiver and the sender (release)..." >&2
(cd "$root" && cargo build --release --quiet --example receiver --example crash_sender)
bin="$root/target/release/examples"

start_receiver() {
    BIND="127.0.0.1:$port" ADMIN_BIND="127.0.0.1:$admin_port" WEBHOOK_SECRET=$secret \
        RECEIVER_MODE=inbox INBOX_STORE=sqlite \
        WEBHOOK_DB="$work/inbox.db" HANDLER_DELAY_MS=${HANDLER_DELAY_MS:-0} RUST_LOG=warn \
        "$bin/receiver" >>"$work/handled.log" 2>>"$work/receiver.err" &
    receiver_pid=$!
    for _ in $(seq 1 200); do
        curl -sf "$base/health" >/dev/null 2>&1 && return 0
        kill -0 "$receiver_pid" 2>/dev/null || { cat "$work/receiver.err" >&2; exit 1; }
        sleep 0.05
    done
    echo "the receiver did not come up" >&2
    exit 1
}

start_receiver
"$bin/crash_sender" --url "$base/webhooks/provider" --secret $secret --concurrency "$concurrency" \
    --duration "$seconds" --acked "$work/acked.txt" --duplicates 10 >"$work/sender.json" 2>"$work/sender.err" &
sender_pid=$!

kills=0
while kill -0 "$sender_pid" 2>/dev/null; do
    sleep "$every"
    kill -0 "$sender_pid" 2>/dev/null || break
    kill -9 "$receiver_pid"
    wait "$receiver_pid" 2>/dev/null || true
    kills=$((kills + 1))
    start_receiver
done
sender_status=0
wait "$sender_pid" || sender_status=$?
sender_pid=

# The final run: let the worker drain everything (a lease held by a killed
# receiver expires after 10 s) before reconciling; give up only when the
# backlog stops shrinking for 60 s.
count_open() {
    sqlite3 "$work/inbox.db" \
        "SELECT count(*) FROM webhook_inbox WHERE status IN ('pending', 'processing')"
}
best=$(count_open)
stalled=0
drain_started=$SECONDS
while ((best > 0 && stalled < 60)); do
    sleep 1
    open=$(count_open)
    if ((open < best)); then best=$open; stalled=0; else stalled=$((stalled + 1)); fi
done
drain_seconds=$((SECONDS - drain_started))
((best == 0)) || echo "still $best events pending or processing, no progress for 60 s" >&2

# Reconcile: every acknowledged id must be `succeeded`.
sort -u "$work/acked.txt" >"$work/acked.sorted"
acked=$(wc -l <"$work/acked.sorted")
sqlite3 "$work/inbox.db" "SELECT event_id || ' ' || status FROM webhook_inbox WHERE namespace = 'generic'" \
    | sort >"$work/records.txt"
awk '$2 == "succeeded" {print $1}' "$work/records.txt" >"$work/succeeded.txt"
recorded=$(wc -l <"$work/records.txt")
lost=$(comm -23 "$work/acked.sorted" "$work/succeeded.txt" | wc -l)
not_succeeded=$(awk '$2 != "succeeded"' "$work/records.txt" | wc -l)
# Spot-check through the audit trail (the admin listener) too.
audit_bad=0
while read -r id; do
    status=$(curl -sf "$admin/events/$id" | jq -r .status)
    [[ "$status" == succeeded ]] || { audit_bad=$((audit_bad + 1)); echo "audit: $id is $status" >&2; }
done < <(shuf -n 200 "$work/acked.sorted" 2>/dev/null || head -n 200 "$work/acked.sorted")
handled_lines=$(grep -c '^handled event_id=' "$work/handled.log" || true)
handled_distinct=$(grep -o '^handled event_id=[^ ]*' "$work/handled.log" | sort -u | wc -l)

echo "crash test: ${seconds}s of load, receiver killed $kills times (every ${every}s)"
echo "  sender:      $(cat "$work/sender.json")"
echo "  acknowledged events:          $acked (backlog drained in ${drain_seconds}s after the load)"
echo "  recorded events:              $recorded ($not_succeeded not succeeded)"
echo "  acknowledged but not succeeded (lost): $lost"
echo "  audit trail spot check:       $audit_bad of $(( acked < 200 ? acked : 200 )) not succeeded"
echo "  handler runs printed:         $handled_lines for $handled_distinct distinct events" \
    "(re-runs after a kill mid-handler are expected: at-least-once)"
failed=0
if ((lost > 0)); then
    echo "FAIL: $lost acknowledged events are not succeeded:" >&2
    comm -23 "$work/acked.sorted" "$work/succeeded.txt" | head -20 >&2
    failed=1
fi
((audit_bad == 0)) || failed=1
((sender_status == 0)) || { echo "FAIL: the sender exited with $sender_status" >&2; failed=1; }
((acked > 0)) || { echo "FAIL: nothing was acknowledged" >&2; failed=1; }
((failed == 0)) && echo "OK: every acknowledged event succeeded; none lost"
exit "$failed"
