#!/usr/bin/env bash
# Forwarded events per second, per broker, beside the SQLite inbox handling
# events itself, in one run on one machine.
#
#   scripts/forward_bench.sh [SECONDS]     # load per mode, default 10
#
# For each mode, a fresh receiver (release build, SQLite inbox, group commit
# on) takes `loadgen` at concurrency 64 (1 KiB bodies, no duplicates) for
# SECONDS; then the script waits until every event answered 200 has arrived
# downstream, counted by the `handled event_id=` lines:
# - `sqlite`: the receiver's own worker handles each event (no broker);
# - `jetstream`, `rabbitmq`, `redis-stream`: the receiver relays
#   (`FORWARD_TO`) and examples/consumer.rs prints each message.
# The figure is  events answered 200 / (time of the last line - load start),
# the load starting once loadgen has signed its requests:
# accepted, recorded, relayed, confirmed by the broker, consumed. The
# loadgen's own requests/s (the accept rate) is printed beside it.
#
# Environment: PROFILE (default release; `debug` for a quick look: the
# figures are then far below a release build's), MODES (default "sqlite
# jetstream rabbitmq redis-stream"),
# CONCURRENCY (default 64), BODY_BYTES (default 1024), FB_PORT (default
# 18094), FB_ADMIN_PORT (default 18194), NATS_URL, AMQP_URL, REDIS_URL (the
# machine's brokers by default; each run uses its own subject, deleted at its
# end), KEEP=1 keeps the work directory. Only 127.0.0.1 is used.
set -euo pipefail

seconds=${1:-10}
modes=${MODES:-sqlite jetstream rabbitmq redis-stream}
concurrency=${CONCURRENCY:-64}
body_bytes=${BODY_BYTES:-1024}
port=${FB_PORT:-18094}
admin_port=${FB_ADMIN_PORT:-18194}
secret=forward_bench_secret
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-forwardbench.XXXXXX")
base="http://127.0.0.1:$port"
profile=${PROFILE:-release}
case "$profile" in
release) profile_flag=--release ;;
debug) profile_flag= ;;
*) echo "PROFILE=$profile: expected release or debug" >&2; exit 1 ;;
esac
bin="$root/target/$profile/examples"
receiver_pid=
consumer_pid=
subject=
forward_to=

stop_processes() {
    for pid in "$receiver_pid" "$consumer_pid"; do
        [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    done
    receiver_pid=
    consumer_pid=
    if [[ -n "$forward_to" ]]; then
        FORWARD_TO=$forward_to FORWARD_SUBJECT=$subject "$bin/consumer" --cleanup >/dev/null 2>&1 || true
    fi
    forward_to=
}
cleanup() {
    stop_processes
    if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building the receiver, the consumer and loadgen ($profile)..." >&2
(cd "$root" && cargo build $profile_flag --quiet --example receiver --example consumer --example loadgen)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
lines() { grep -c '^handled' "$1" 2>/dev/null || true; }

results=()
for mode in $modes; do
    subject="forwardbench_$$_${mode//-/_}"
    handled="$work/$mode.handled"
    : >"$handled"
    rm -f "$work/$mode.db"*
    if [[ "$mode" == sqlite ]]; then
        forward_to=
        receiver_out=$handled
    else
        forward_to=$mode
        receiver_out=/dev/null
    fi
    env BIND="127.0.0.1:$port" ADMIN_BIND="127.0.0.1:$admin_port" WEBHOOK_SECRET=$secret \
        RECEIVER_MODE=inbox INBOX_STORE=sqlite WEBHOOK_DB="$work/$mode.db" \
        ${forward_to:+FORWARD_TO=$forward_to} FORWARD_SUBJECT="$subject" RUST_LOG=warn \
        "$bin/receiver" >"$receiver_out" 2>"$work/$mode.receiver.err" &
    receiver_pid=$!
    for _ in $(seq 1 200); do
        curl -sf "$base/health" >/dev/null 2>&1 && break
        kill -0 "$receiver_pid" 2>/dev/null || { cat "$work/$mode.receiver.err" >&2; exit 1; }
        sleep 0.05
    done
    if [[ -n "$forward_to" ]]; then
        FORWARD_TO=$forward_to FORWARD_SUBJECT=$subject RUST_LOG=warn \
            "$bin/consumer" >"$handled" 2>"$work/$mode.consumer.err" &
        consumer_pid=$!
        sleep 1
        kill -0 "$consumer_pid" 2>/dev/null || { cat "$work/$mode.consumer.err" >&2; exit 1; }
    fi

    started=$(now_ms)
    "$bin/loadgen" --url "$base/webhooks/provider" --secret $secret --concurrency "$concurrency" \
        --duration "$seconds" --body-bytes "$body_bytes" --duplicates 0 --json >"$work/$mode.load.json"
    # The load starts once loadgen has signed its requests (up front).
    signing_ms=$(jq -r '.signing_s * 1000 | floor' "$work/$mode.load.json")
    started=$((started + signing_ms))
    acked=$(jq -r '.status_counts["200"] // 0' "$work/$mode.load.json")
    accept_rps=$(jq -r '.requests_per_sec | floor' "$work/$mode.load.json")
    # Wait for the last one downstream; give up when nothing arrives for 30 s.
    seen=$(lines "$handled")
    last_change=$(now_ms)
    last_seen_at=$last_change
    while ((seen < acked)); do
        sleep 0.05
        now=$(lines "$handled")
        if ((now > seen)); then seen=$now; last_seen_at=$(now_ms); last_change=$last_seen_at; fi
        (($(now_ms) - last_change < 30000)) || break
    done
    elapsed_ms=$((last_seen_at - started))
    rate=$((seen * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))
    distinct=$(grep -o '^handled event_id=[^ ]*' "$handled" | sort -u | wc -l)
    status=ok
    ((seen >= acked)) || status="MISSING $((acked - seen))"
    results+=("$(printf '%-13s %10s %12s %12s %10s %s' "$mode" "$acked" "$accept_rps" "$rate" \
        "$((seen - distinct))" "$status")")
    stop_processes
done

echo "forwarded events/s at concurrency $concurrency, ${body_bytes} B bodies, ${seconds} s of load per mode ($profile build, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)):"
printf '%-13s %10s %12s %12s %10s %s\n' mode "200s" "accepted/s" "forwarded/s" "dup lines" ""
printf '%s\n' "${results[@]}"
