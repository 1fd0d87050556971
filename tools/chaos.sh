#!/usr/bin/env bash
# The chaos run: the whole system under a steady load while services are SIGKILLed and
# restarted at random moments and the Kafka broker is killed and restarted once; then
# it waits for the system to drain and checks every invariant of the contract. Nothing
# may be lost or applied twice. Some users' mails fail on purpose (`+fail`), so messages
# walk the retries into the dead-letter topics all through the run: a service that lost
# a relay or a partition's worker on that path shows up as orders without their e-mail.
#
#   tools/chaos.sh [--rate N] [--duration S] [--kills N] [--seed N] [--release] [--postgres]
#
# It runs its own copy of the system beside anything else: ports 10000 above the
# registered ones (18080-18085), SQLite files under .chaos/<run>/ (or, with --postgres, databases chaos_<run>_<service> on the
# stack's PostgreSQL, dropped at the end), topics and consumer groups prefixed
# `chaos-<run>.` (deleted at the end). The stack is started with stack/stack.sh if needed.
# Its last line is `chaos: 1 passed, 0 failed` or `chaos: 0 passed, 1 failed`.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=20 duration=60 kills=8 seed=$RANDOM profile=debug postgres=false
while (($#)); do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --kills) kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --postgres) postgres=true; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
RANDOM=$seed

log() { printf '[chaos] %s\n' "$*" >&2; }
verdict() {
  echo "chaos: $1 passed, $2 failed"
  exit "$(( $2 > 0 ? 1 : 0 ))"
}

# services and port[name] from the registry; this run's copy listens 10000 above them.
source services/registry.sh
for s in "${services[@]}"; do port[$s]=$((port[$s] + 10000)); done

target=${CARGO_TARGET_DIR:-target}/$profile
for bin in "${services[@]}" loadgen check-invariants; do
  [[ -x $target/$bin ]] || { log "$target/$bin is missing: cargo build --workspace --bins first"; verdict 0 1; }
done

run=$(date +%s)-$$
dir=.chaos/$run
mkdir -p "$dir/data"
prefix=chaos-$run.
# This run's own admin: user-service creates it at start; loadgen signs in with it.
admin_email=admin-$run@example.com admin_password=chaos-$run-password

components=(kafka zipkin)
$postgres && components+=(postgres)
started=()
for c in "${components[@]}"; do stack/stack.sh running "$c" || started+=("$c"); done
((${#started[@]} == 0)) || stack/stack.sh start "${started[@]}"
bootstrap=$(stack/stack.sh bootstrap)
broker_pidfile=$(ls .stack/kafka/1x*/node-1/pid 2>/dev/null | head -1)
pg_server=postgres://postgres@127.0.0.1:${PG_PORT:-5432}
pg_prefix=chaos_${run//-/_}_
psql_admin() { psql -X -q -h 127.0.0.1 -p "${PG_PORT:-5432}" -U postgres -d postgres -c "$1"; }
database_url() {
  if $postgres; then echo "$pg_server/$pg_prefix${1//-/_}"; else echo "sqlite://$dir/data/$1.db?mode=rwc"; fi
}
if $postgres; then
  for db in "${databases[@]}"; do psql_admin "CREATE DATABASE $pg_prefix$db" || verdict 0 1; done
fi

declare -A pid=()
start_service() {
  local s=$1
  DATABASE_URL=$(database_url "$s") KAFKA_BOOTSTRAP_SERVERS=$bootstrap KAFKA_TOPIC_PREFIX=$prefix \
    HTTP_ADDR=127.0.0.1:${port[$s]} SERVICE_URL_TEMPLATE='http://127.0.0.1:1{port}' \
    JWKS_URL="http://127.0.0.1:${port[user-service]}/.well-known/jwks.json" \
    ADMIN_EMAIL=$admin_email ADMIN_PASSWORD=$admin_password \
    RUST_LOG=warn "$target/$s" >>"$dir/$s.log" 2>&1 &
  pid[$s]=$!
}
healthy() { curl -sf "http://127.0.0.1:${port[$1]}/health" >/dev/null 2>&1; }
# Like a supervisor's restart policy: a service that cannot start yet (Kafka is down, so
# it cannot create its topics) is started again until it answers.
bring_up() {
  local s=$1 deadline=$((SECONDS + 120))
  start_service "$s"
  until healthy "$s"; do
    if ! kill -0 "${pid[$s]}" 2>/dev/null; then
      ((SECONDS < deadline)) || { log "$s did not come back within 120 s"; return 1; }
      sleep 1
      start_service "$s"
    fi
    sleep 0.2
  done
}

loadgen_pid=
keep=false
cleanup() {
  trap '' INT TERM
  [[ -n $loadgen_pid ]] && kill "$loadgen_pid" 2>/dev/null || true
  local s
  for s in "${!pid[@]}"; do kill -TERM "${pid[$s]}" 2>/dev/null || true; done
  for s in "${!pid[@]}"; do wait "${pid[$s]}" 2>/dev/null || true; done
  stack/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --delete --topic "${prefix//./\\.}.*" >/dev/null 2>&1 || true
  if $postgres && ! $keep; then
    for db in "${databases[@]}"; do psql_admin "DROP DATABASE IF EXISTS $pg_prefix$db WITH (FORCE)" || true; done
  fi
  ((${#started[@]} == 0)) || stack/stack.sh stop "${started[@]}"
}
trap cleanup EXIT

log "run $run, seed $seed: $rate orders/s for $duration s, $kills kills and one broker restart, on $($postgres && echo PostgreSQL || echo SQLite)"
for s in "${services[@]}"; do bring_up "$s" || verdict 0 1; done

ADMIN_EMAIL=$admin_email ADMIN_PASSWORD=$admin_password \
  "$target/loadgen" --base-url "http://127.0.0.1:${port[gateway]}" --kafka "$bootstrap" --topic-prefix "$prefix" \
  --rate "$rate" --duration "$duration" --users 20 --undeliverable 4 --products 10 --settle 120 --json \
  >"$dir/loadgen.out" 2>"$dir/loadgen.err" &
loadgen_pid=$!
# The load starts once users and products exist.
until grep -q 'Rate' "$dir/loadgen.err" 2>/dev/null; do
  kill -0 "$loadgen_pid" 2>/dev/null || { cat "$dir/loadgen.err" >&2; verdict 0 1; }
  sleep 0.2
done

restart_broker() {
  log "SIGKILL kafka broker (pid $(cat "$broker_pidfile"))"
  kill -KILL "$(cat "$broker_pidfile")"
  sleep 3
  stack/stack.sh start kafka >>"$dir/kafka-restart.log" 2>&1 || { log "kafka did not restart"; verdict 0 1; }
  log "kafka is back"
}

# Kills spread over the run; the broker goes down once, half-way.
load_start=$SECONDS
broker_at=$((duration / 2))
broker_done=false
for ((k = 0; k < kills; k++)); do
  sleep "$(( (duration * 8 / 10) / kills ))"
  if ! $broker_done && ((SECONDS - load_start >= broker_at)); then
    broker_done=true
    restart_broker
  fi
  victim=${services[RANDOM % ${#services[@]}]}
  log "SIGKILL $victim (pid ${pid[$victim]})"
  kill -KILL "${pid[$victim]}" 2>/dev/null || true
  wait "${pid[$victim]}" 2>/dev/null || true
  sleep "0.$((RANDOM % 10))"
  bring_up "$victim" || verdict 0 1
done
$broker_done || restart_broker

log "waiting for the load generator and the system to drain"
loadgen_rc=0
wait "$loadgen_pid" || loadgen_rc=$?
loadgen_pid=
cat "$dir/loadgen.out" >&2
summary=$(tail -1 "$dir/loadgen.out")
lost=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["lost"])' "$summary" 2>/dev/null || echo unknown)
orders=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["orders"])' "$summary" 2>/dev/null || echo 0)
log "load generator exit $loadgen_rc (refused requests are expected while services are down): $orders orders, lost $lost"

failed=0
[[ $lost == 0 ]] || { log "orders were lost"; failed=1; }
((orders > 0)) || { log "no order was accepted"; failed=1; }
if $postgres; then
  checked=(--postgres "$pg_server" --database-prefix "$pg_prefix")
else
  checked=(--data "$dir/data")
fi
if "$target/check-invariants" "${checked[@]}" --within 120 >&2; then
  log "every invariant holds"
else
  keep=true
  log "invariants broken (databases kept: ${checked[*]})"
  failed=1
fi
((failed)) || rm -rf "$dir"
verdict $((1 - failed)) "$failed"
