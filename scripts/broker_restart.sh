#!/usr/bin/env bash
# Broker restart during load: the receiver relays its SQLite inbox to a broker
# (FORWARD_TO) while examples/consumer.rs prints what arrives; the broker is
# stopped and started again mid-load. While it is down, the receiver must keep
# answering 200 (the events wait in its inbox); after it is back, everything
# must arrive: every event acknowledged with 200 is printed by the consumer.
#
#   scripts/broker_restart.sh [SECONDS]            # load, default 30
#   BROKER=rabbitmq scripts/broker_restart.sh
#
# The machine's shared brokers are never stopped:
# - BROKER=jetstream (default): a private nats-server (NATS_SERVER_BIN, default
#   nats-server on the PATH or /usr/sbin/nats-server) on NATS_PORT (default
#   18422) with its JetStream store in the work directory, stopped with
#   SIGTERM and started again on the same store.
# - BROKER=rabbitmq: a socat TCP proxy on PROXY_PORT (default 18672) in front
#   of AMQP_UPSTREAM (default 127.0.0.1:5672, credentials guest:guest, vhost
#   /), killed with every connection through it, and started again: to the
#   clients the broker goes away and comes back, and the queue, on the
#   machine's broker, keeps what was confirmed.
#
# Environment: DOWN_AT (seconds into the load, default 8), DOWN_FOR (default
# 8), BR_PORT (the receiver, default 18093), BR_ADMIN_PORT (default 18193),
# CONCURRENCY (default 8), KEEP=1 keeps the work directory. Only 127.0.0.1 is
# used. Duplicates downstream are counted and reported: none for JetStream
# within its duplicate window; for RabbitMQ, which has no broker-side dedupe,
# at most the publishes in flight when the connection was cut.
set -euo pipefail

seconds=${1:-30}
broker=${BROKER:-jetstream}
down_at=${DOWN_AT:-8}
down_for=${DOWN_FOR:-8}
port=${BR_PORT:-18093}
admin_port=${BR_ADMIN_PORT:-18193}
concurrency=${CONCURRENCY:-8}
secret=broker_restart_secret
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-brokerrestart.XXXXXX")
base="http://127.0.0.1:$port"
subject="brokerrestart_$$"
bin="$root/target/release/examples"
broker_pid=
receiver_pid=
consumer_pid=
sender_pid=
probe_pid=

case "$broker" in
jetstream)
    nats_bin=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
    [[ -x "$nats_bin" ]] || { echo "no nats-server (set NATS_SERVER_BIN)" >&2; exit 1; }
    nats_port=${NATS_PORT:-18422}
    broker_env=(FORWARD_TO=jetstream "NATS_URL=nats://127.0.0.1:$nats_port")
    consumer_env=("${broker_env[@]}")
    broker_start() {
        "$nats_bin" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >>"$work/broker.log" 2>&1 &
        broker_pid=$!
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && return 0
            sleep 0.1
        done
        echo "nats-server did not start" >&2
        return 1
    }
    broker_stop() {
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    }
    ;;
rabbitmq)
    command -v socat >/dev/null || { echo "socat is needed for BROKER=rabbitmq" >&2; exit 1; }
    proxy_port=${PROXY_PORT:-18672}
    upstream=${AMQP_UPSTREAM:-127.0.0.1:5672}
    broker_env=(FORWARD_TO=rabbitmq "AMQP_URL=amqp://guest:guest@127.0.0.1:$proxy_port/%2f")
    # The consumer reads the broker directly: the outage is the relay's.
    consumer_env=(FORWARD_TO=rabbitmq "AMQP_URL=amqp://guest:guest@$upstream/%2f")
    broker_start() {
        # Its own process group: the forked children hold the connections.
        setsid socat "TCP-LISTEN:$proxy_port,fork,reuseaddr,bind=127.0.0.1" "TCP:$upstream" \
            >>"$work/broker.log" 2>&1 &
        broker_pid=$!
        for _ in $(seq 1 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && return 0
            sleep 0.1
        done
        echo "the proxy did not start" >&2
        return 1
    }
    broker_stop() {
        kill -TERM -- "-$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    }
    ;;
*)
    echo "BROKER=$broker: expected jetstream or rabbitmq" >&2
    exit 1
    ;;
esac

cleanup() {
    for pid in "$probe_pid" "$sender_pid"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    done
    for pid in "$receiver_pid" "$consumer_pid"; do
        [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    done
    if [[ -n "$broker_pid" || "$broker" == rabbitmq ]]; then
        [[ -n "$broker_pid" ]] || broker_start || true
        env "${broker_env[@]}" FORWARD_SUBJECT="$subject" "$bin/consumer" --cleanup \
            >/dev/null 2>&1 || true
        [[ -n "$broker_pid" ]] && broker_stop
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building the receiver, the consumer and the senders (release)..." >&2
(cd "$root" && cargo build --release --quiet --example receiver --example consumer \
    --example crash_sender --example send)

broker_start
env BIND="127.0.0.1:$port" ADMIN_BIND="127.0.0.1:$admin_port" WEBHOOK_SECRET=$secret \
    RECEIVER_MODE=inbox INBOX_STORE=sqlite WEBHOOK_DB="$work/inbox.db" \
    "${broker_env[@]}" FORWARD_SUBJECT="$subject" RUST_LOG=warn \
    "$bin/receiver" >/dev/null 2>"$work/receiver.err" &
receiver_pid=$!
for _ in $(seq 1 200); do
    curl -sf "$base/health" >/dev/null 2>&1 && break
    kill -0 "$receiver_pid" 2>/dev/null || { cat "$work/receiver.err" >&2; exit 1; }
    sleep 0.05
done
env "${consumer_env[@]}" FORWARD_SUBJECT="$subject" RUST_LOG=warn \
    "$bin/consumer" >"$work/handled.log" 2>"$work/consumer.err" &
consumer_pid=$!

# A probe: every 0.2 s, one fresh signed delivery through the real sender,
# logged as "<ms since start> <status> <id>".
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

"$bin/crash_sender" --url "$base/webhooks/provider" --secret $secret --concurrency "$concurrency" \
    --duration "$seconds" --acked "$work/acked.txt" --prefix br >"$work/sender.json" 2>"$work/sender.err" &
sender_pid=$!
load_started=$(date +%s%N)
ms() { echo $((($(date +%s%N) - load_started) / 1000000)); }

sleep "$down_at"
stop_ms=$(ms)
broker_stop
handled_at_stop=$(grep -c '^handled' "$work/handled.log" || true)
sleep "$down_for"
handled_before_start=$(grep -c '^handled' "$work/handled.log" || true)
start_ms=$(ms)
broker_start
ready_ms=$(ms)

sender_status=0
wait "$sender_pid" || sender_status=$?
sender_pid=
kill "$probe_pid" 2>/dev/null || true
wait "$probe_pid" 2>/dev/null || true
probe_pid=

# Every acknowledged id (the sender's and the probe's 200s) must reach the
# consumer; wait until it has, or until no progress for 60 s.
sort -u "$work/acked.txt" >"$work/acked.sorted"
awk '$2 == 200 {print $3}' "$work/probe.log" >>"$work/acked.sorted"
sort -u -o "$work/acked.sorted" "$work/acked.sorted"
missing() {
    grep -o '^handled event_id=[^ ]*' "$work/handled.log" | cut -d= -f2 | sort -u >"$work/handled.sorted"
    comm -23 "$work/acked.sorted" "$work/handled.sorted" | wc -l
}
best=$(missing)
stalled=0
while ((best > 0 && stalled < 60)); do
    sleep 1
    now=$(missing)
    if ((now < best)); then best=$now; stalled=0; else stalled=$((stalled + 1)); fi
done
acked=$(wc -l <"$work/acked.sorted")
lines=$(grep -c '^handled' "$work/handled.log" || true)
distinct=$(wc -l <"$work/handled.sorted")
probe_non_200=$(awk '$2 != 200' "$work/probe.log" | wc -l)

echo "broker restart under load ($broker, ${seconds}s):"
echo "  broker stopped at ${stop_ms} ms, started at ${start_ms} ms, accepting at ${ready_ms} ms"
echo "  consumer lines while it was down: $((handled_before_start - handled_at_stop))"
echo "  probe: $(wc -l <"$work/probe.log") deliveries, $probe_non_200 not answered 200"
echo "  sender: $(cat "$work/sender.json")"
echo "  acknowledged: $acked events; downstream: $lines messages, $distinct distinct," \
    "$((lines - distinct)) duplicates; acknowledged but missing downstream: $best"
failed=0
((probe_non_200 == 0)) || { echo "FAIL: the receiver did not answer 200 while the broker was down" >&2; failed=1; }
((best == 0)) || { echo "FAIL: $best acknowledged events never arrived:" >&2; comm -23 "$work/acked.sorted" "$work/handled.sorted" | head >&2; failed=1; }
((sender_status == 0)) || { echo "FAIL: the sender exited with $sender_status" >&2; failed=1; }
((acked > 0)) || { echo "FAIL: nothing was acknowledged" >&2; failed=1; }
((failed == 0)) && echo "OK: 200 while the broker was down, everything arrived after its restart"
exit "$failed"
