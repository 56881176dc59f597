#!/usr/bin/env bash
# Soak test: the receiver (inbox mode) under sustained load, first on the SQLite
# inbox, then on the PostgreSQL inbox, with 20% duplicate deliveries and 1% of
# handler runs failing (HANDLER_FAIL_PCT=1, retried by the worker).
#
#   scripts/soak.sh [MINUTES]       # minutes of load per phase, default 5
#
# At the end of each phase it reconciles, through the audit trail (the
# receiver's admin listener), the
# store and the receiver's stdout:
#   - nothing is left pending or processing: every recorded event is
#     `succeeded` or `dead`;
#   - no event was handled twice (one `handled event_id=` line per id), and
#     the succeeded events are exactly the handled ones;
#   - every load generator answer was 200 (new or duplicate);
#   - peak RSS is flat: after a warm-up (a minute, or a third of a short run),
#     the largest VmRSS of the last third is within 10% of the first third's.
# It prints a summary and exits non-zero on any violation.
#
# Environment: SOAK_PORT (default 18090), SOAK_ADMIN_PORT (the audit trail,
# default 18190), SOAK_CONCURRENCY (default 8),
# SOAK_BODY_BYTES (default 1024), SOAK_PHASES ("sqlite postgres"),
# TOWER_WEBHOOKS_PG_URL (default postgres://postgres@127.0.0.1:5432/test; the
# phase creates and drops a fresh database next to it), KEEP=1 keeps the work
# directory. Needs curl, jq, sqlite3 and psql. Only 127.0.0.1 is used.
set -euo pipefail

minutes=${1:-5}
port=${SOAK_PORT:-18090}
admin_port=${SOAK_ADMIN_PORT:-18190}
concurrency=${SOAK_CONCURRENCY:-8}
body_bytes=${SOAK_BODY_BYTES:-1024}
phases=${SOAK_PHASES:-sqlite postgres}
pg_url=${TOWER_WEBHOOKS_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
secret=soak_script_secret
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-soak.XXXXXX")
base="http://127.0.0.1:$port"
admin="http://127.0.0.1:$admin_port"
duration=$((minutes * 60))
receiver_pid=
sampler_pid=
pg_db=
violations=()

# postgres://user@host:port/db?x -> the same URL naming database $2
pg_url_with_db() {
    local url=${1%%\?*}
    echo "${url%/*}/$2"
}

cleanup() {
    [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null || true
    if [[ -n "$receiver_pid" ]]; then
        kill "$receiver_pid" 2>/dev/null || true
        wait "$receiver_pid" 2>/dev/null || true
    fi
    if [[ -n "$pg_db" ]]; then
        psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ ! -f "$root/examples/loadgen.rs" ]]; then
    echo "examples/loadgen.rs does not exist (yet): no load generator" >&2
    exit 2
fi
echo "building the receiver and the load generator (release)..." >&2
(cd "$root" && cargo build --release --quiet --example receiver --example loadgen)
bin="$root/target/release/examples"

sample_rss() { # pid file: "seconds VmRSS_kB VmHWM_kB" every 3 s
    local started=$SECONDS
    while [[ -r /proc/$1/status ]]; do
        awk -v t=$((SECONDS - started)) '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {if (r) print t, r, h}' \
            "/proc/$1/status" >>"$2" 2>/dev/null || true
        sleep 3
    done
}

violation() {
    violations+=("$1")
    echo "VIOLATION: $1" >&2
}

run_phase() {
    local store=$1 dir="$work/$1" count_sql database_url=
    mkdir -p "$dir"
    if [[ "$store" == postgres ]]; then
        pg_db="tw_soak_$$"
        psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" >/dev/null
        database_url=$(pg_url_with_db "$pg_url" "$pg_db")
    fi
    sql() {
        if [[ "$store" == sqlite ]]; then
            sqlite3 "$dir/inbox.db" "$1"
        else
            psql -qtA "$database_url" -c "$1"
        fi
    }
    local table=webhook_inbox
    [[ "$store" == postgres ]] && table=tower_webhooks_inbox

    BIND="127.0.0.1:$port" ADMIN_BIND="127.0.0.1:$admin_port" WEBHOOK_SECRET=$secret RECEIVER_MODE=inbox INBOX_STORE=$store \
        WEBHOOK_DB="$dir/inbox.db" DATABASE_URL="$database_url" HANDLER_FAIL_PCT=1 RUST_LOG=warn \
        "$bin/receiver" >"$dir/handled.log" 2>"$dir/receiver.err" &
    receiver_pid=$!
    for _ in $(seq 1 200); do
        curl -sf "$base/health" >/dev/null 2>&1 && break
        kill -0 "$receiver_pid" 2>/dev/null || { cat "$dir/receiver.err" >&2; exit 1; }
        sleep 0.05
    done
    sample_rss "$receiver_pid" "$dir/rss.txt" &
    sampler_pid=$!

    echo "== $store: ${minutes} min of load, concurrency $concurrency, ${body_bytes}-byte bodies, 20% duplicates, 1% handler failures" >&2
    # The load generator signs its requests up front (at most 200,000 a run,
    # at most 240 s): run it round after round until the phase's time is up.
    local phase_started=$SECONDS left round=0
    : >"$dir/loadgen.jsonl"
    while left=$((duration - (SECONDS - phase_started))); ((left > 5)); do
        round=$((round + 1))
        "$bin/loadgen" --url "$base/webhooks/provider" --secret $secret --concurrency "$concurrency" \
            --duration $((left < 240 ? left : 240)) --body-bytes "$body_bytes" --duplicates 20 --json \
            >"$dir/loadgen.out" 2>>"$dir/loadgen.err" || violation "$store: the load generator exited with $?"
        grep '^{' "$dir/loadgen.out" | tail -n 1 >>"$dir/loadgen.jsonl" || true
    done
    # All rounds together: requests/s over the time spent sending, the median
    # round's p50, the worst round's p99 and max, summed status counts.
    local report
    report=$(jq -s '{
        rounds: length,
        requests: (map(.requests) | add),
        requests_per_sec: ((map(.requests) | add) / (map(.elapsed_s) | add) | floor),
        p50_ms: (map(.p50_ms) | sort | .[length / 2 | floor]),
        p99_ms: (map(.p99_ms) | max),
        max_ms: (map(.max_ms) | max),
        status_counts: (map(.status_counts | to_entries) | add | group_by(.key)
            | map({key: .[0].key, value: (map(.value) | add)}) | from_entries)
    }' "$dir/loadgen.jsonl" 2>/dev/null || echo '{}')

    # Drain: wait until nothing is pending or processing; give up only when
    # the backlog stops shrinking for 60 s (failed runs back off 0.5-1 s, 2 s, ...).
    local open best stalled=0 drain_started=$SECONDS
    best=$(sql "SELECT count(*) FROM $table WHERE status IN ('pending', 'processing')")
    while ((best > 0 && stalled < 60)); do
        sleep 5 # the count itself scans the backlog: not too often
        open=$(sql "SELECT count(*) FROM $table WHERE status IN ('pending', 'processing')")
        if ((open < best)); then best=$open; stalled=0; else stalled=$((stalled + 5)); fi
    done
    local drain_seconds=$((SECONDS - drain_started))

    # Reconcile.
    local pending processing dead succeeded recorded retried
    pending=$(curl -sf "$admin/events?status=pending&limit=10000" | jq '.events | length')
    processing=$(curl -sf "$admin/events?status=processing&limit=10000" | jq '.events | length')
    dead=$(curl -sf "$admin/events?status=dead&limit=10000" | jq '.events | length')
    succeeded=$(sql "SELECT count(*) FROM $table WHERE status = 'succeeded'")
    recorded=$(sql "SELECT count(*) FROM $table")
    retried=$(sql "SELECT count(*) FROM $table WHERE attempts > 1")
    grep -o '^handled event_id=[^ ]*' "$dir/handled.log" | cut -d= -f2 | sort | uniq -c \
        | awk '{print $2, $1}' >"$dir/handled-counts.txt"
    local handled_lines handled_distinct handled_twice
    handled_lines=$(awk '{s += $2} END {print s + 0}' "$dir/handled-counts.txt")
    handled_distinct=$(wc -l <"$dir/handled-counts.txt")
    handled_twice=$(awk '$2 > 1' "$dir/handled-counts.txt" | wc -l)
    local audit_bad=0 id status
    while read -r id _; do
        status=$(curl -sf "$admin/events/$id" | jq -r .status)
        [[ "$status" == succeeded ]] || audit_bad=$((audit_bad + 1))
    done < <(shuf -n 100 "$dir/handled-counts.txt")

    ((pending == 0 && processing == 0)) \
        || violation "$store: $pending pending and $processing processing after the drain"
    ((recorded == succeeded + dead)) \
        || violation "$store: $recorded recorded but $succeeded succeeded + $dead dead"
    ((handled_twice == 0)) || violation "$store: $handled_twice events handled more than once"
    ((succeeded == handled_distinct)) \
        || violation "$store: $succeeded succeeded but $handled_distinct distinct events handled"
    ((audit_bad == 0)) || violation "$store: $audit_bad handled events not succeeded in the audit trail"
    ((recorded > 0)) || violation "$store: nothing was recorded"
    local non_200
    non_200=$(jq '[.status_counts // {} | to_entries[] | select(.key != "200") | .value] | add // 0' <<<"$report")
    ((non_200 == 0)) || violation "$store: $non_200 answers other than 200: $(jq -c .status_counts <<<"$report")"

    kill "$receiver_pid"
    wait "$receiver_pid" 2>/dev/null || true
    receiver_pid=
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=

    # Memory: warm-up = min(60 s, a third of the run); then thirds.
    local warmup=$((duration / 3 < 60 ? duration / 3 : 60)) rss_report
    rss_report=$(awk -v w="$warmup" -v end="$duration" '
        $1 >= w && $1 <= end { t[n] = $1; r[n] = $2; h = $3; n++ }
        END {
            if (n < 3) { print "few", 0, 0, h; exit }
            a = int(n / 3); first = 0; last = 0
            for (i = 0; i < a; i++) if (r[i] > first) first = r[i]
            for (i = n - a; i < n; i++) if (r[i] > last) last = r[i]
            print (last <= first * 1.10 ? "flat" : "growing"), first, last, h
        }' "$dir/rss.txt")
    local verdict first_kb last_kb hwm_kb
    read -r verdict first_kb last_kb hwm_kb <<<"$rss_report"
    [[ "$verdict" != growing ]] \
        || violation "$store: RSS grew: first-third max ${first_kb} kB, last-third max ${last_kb} kB"

    echo "-- $store summary"
    echo "   load:       $(jq -c . <<<"$report")"
    echo "   events:     $recorded recorded, $succeeded succeeded, $dead dead, $retried needed more than one attempt; drained ${drain_seconds}s after the load"
    echo "   handled:    $handled_lines lines for $handled_distinct events, $handled_twice handled twice; audit spot check $audit_bad/100 bad"
    echo "   memory:     VmRSS max ${first_kb} kB (first third after ${warmup}s warm-up) -> ${last_kb} kB (last third): $verdict; VmHWM ${hwm_kb} kB"
    if [[ "$store" == postgres ]]; then
        psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
        pg_db=
    fi
}

for phase in $phases; do
    run_phase "$phase"
done

if ((${#violations[@]} > 0)); then
    echo "FAIL: ${#violations[@]} violations:"
    printf '  %s\n' "${violations[@]}"
    exit 1
fi
echo "OK: no violations"
