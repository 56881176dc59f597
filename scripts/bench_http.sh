#!/usr/bin/env bash
# Routes side by side over HTTP, in one run: each variant against the bare
# route, alternating, on the same machine at the same time.
#
#   scripts/bench_http.sh [ROUNDS [VARIANT...]]    # default: 3 guarded
#
# Variants (each compared with `bare`, the axum handler alone on
# examples/bench_server):
#
#   guarded   bench_server's /guarded: the same handler behind WebhookLayer
#             (reference scheme) and IdempotencyLayer(MemoryStore);
#   sqlite    examples/receiver in inbox mode on a fresh SQLite file (WAL,
#             synchronous=FULL: every accepted event is fsynced before 200),
#             its worker running the handler in the background;
#   postgres  the same on a fresh PostgreSQL database (made next to
#             TOWER_WEBHOOKS_PG_URL's and dropped after the round).
#
# Each round runs examples/loadgen against `bare` and each variant one after
# the other (the order alternates between rounds, so no side always runs on
# a warmer or quieter machine) and prints both sides; the end prints the
# median of each variant's per-round ratios. Every answer must be 200.
#
# Environment: BENCH_PORT (default 18085; the receiver uses the next port
# and the one after for its admin listener), BENCH_CONCURRENCY (64),
# BENCH_BODY_BYTES (1024), BENCH_DURATION (seconds per side and round, 5),
# BENCH_REQUESTS (per side and round, 300000), TOWER_WEBHOOKS_PG_URL
# (postgres://postgres@127.0.0.1:5432/test), NO_BUILD=1 to use the binaries
# already in target/release. Needs jq (and psql for `postgres`). Only
# 127.0.0.1 is used.
set -euo pipefail

rounds=${1:-3}
shift || true
variants=("${@:-guarded}")
port=${BENCH_PORT:-18085}
receiver_port=$((port + 1))
concurrency=${BENCH_CONCURRENCY:-64}
body_bytes=${BENCH_BODY_BYTES:-1024}
duration=${BENCH_DURATION:-5}
requests=${BENCH_REQUESTS:-300000}
pg_url=${TOWER_WEBHOOKS_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
secret=bench_http_script_secret
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v jq > /dev/null || { echo "bench_http.sh needs jq" >&2; exit 2; }
for variant in "${variants[@]}"; do
  case $variant in
    guarded | sqlite) ;;
    postgres) command -v psql > /dev/null || { echo "postgres needs psql" >&2; exit 2; } ;;
    *) echo "unknown variant $variant (guarded, sqlite, postgres)" >&2; exit 2 ;;
  esac
done
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --quiet --example bench_server --example loadgen --example receiver
fi
target=${CARGO_TARGET_DIR:-$root/target}/release/examples
work=$(mktemp -d "${TMPDIR:-/tmp}/tower-webhooks-bench.XXXXXX")
server=
receiver=
cleanup() {
  for pid in $receiver $server; do
    kill "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for PORT
  for _ in $(seq 1 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

WEBHOOK_SECRET=$secret BIND=127.0.0.1:$port RUST_LOG=warn "$target/bench_server" > /dev/null &
server=$!
wait_for "$port"

# load URL -> one JSON line from loadgen, after checking every answer was 200
load() {
  local result
  result=$("$target/loadgen" --url "$1" --secret "$secret" --concurrency "$concurrency" \
    --duration "$duration" --body-bytes "$body_bytes" --duplicates 0 --requests "$requests" --json)
  if [ "$(jq -c '.status_counts' <<< "$result")" != "{\"200\":$(jq '.requests' <<< "$result")}" ]; then
    echo "$1: not every answer was 200: $(jq -c '.status_counts' <<< "$result")" >&2
    exit 1
  fi
  echo "$result"
}

# side VARIANT ROUND -> JSON line; starts and stops the receiver for inbox variants
side() {
  local variant=$1 round=$2 result database
  case $variant in
    bare | guarded) load "http://127.0.0.1:$port/$variant" ;;
    sqlite | postgres)
      local env=(RECEIVER_MODE=inbox HANDLER_DELAY_MS=0 WEBHOOK_SECRET=$secret
        BIND=127.0.0.1:$receiver_port ADMIN_BIND=127.0.0.1:$((port + 2)) RUST_LOG=warn)
      if [ "$variant" = sqlite ]; then
        env+=(INBOX_STORE=sqlite "WEBHOOK_DB=$work/round$round.db")
      else
        database=tw_bench_$$_$round
        psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $database" -c "CREATE DATABASE $database"
        env+=(INBOX_STORE=postgres "DATABASE_URL=${pg_url%/*}/$database")
      fi
      env "${env[@]}" "$target/receiver" > /dev/null &
      receiver=$!
      wait_for "$receiver_port"
      result=$(load "http://127.0.0.1:$receiver_port/webhooks/provider")
      kill "$receiver"
      wait "$receiver" 2> /dev/null || true
      receiver=
      rm -f "$work"/round"$round".db*
      if [ "$variant" = postgres ]; then
        psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $database (FORCE)"
      fi
      echo "$result"
      ;;
  esac
}

echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); c=$concurrency, $body_bytes B bodies, ${duration} s per side"
declare -A ratios
for round in $(seq 1 "$rounds"); do
  for variant in "${variants[@]}"; do
    if (( round % 2 )); then order=(bare "$variant"); else order=("$variant" bare); fi
    for who in "${order[@]}"; do
      result=$(side "$who" "$round")
      declare "rps_$who=$(jq '.requests_per_sec | floor' <<< "$result")"
      declare "lat_$who=$(jq -r '"p50 \(.p50_ms) / p99 \(.p99_ms) ms"' <<< "$result")"
    done
    rps_variant=rps_$variant
    lat_variant=lat_$variant
    ratio=$(awk -v v="${!rps_variant}" -v b="$rps_bare" 'BEGIN { printf "%.3f", v / b }')
    ratios[$variant]+="$ratio "
    echo "round $round: bare $rps_bare req/s ($lat_bare); $variant ${!rps_variant} req/s (${!lat_variant}); $variant/bare ${ratio}x"
  done
done
for variant in "${variants[@]}"; do
  # shellcheck disable=SC2086
  median=$(printf '%s\n' ${ratios[$variant]} | sort -n |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  echo "median $variant/bare: ${median}x over $rounds rounds"
done
