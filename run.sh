#!/usr/bin/env bash
# Builds and runs the whole system on this machine, in the foreground: Kafka (KRaft) and
# Zipkin from Maven Central's jars, every service on its own SQLite file under ./data/
# (or on PostgreSQL with --postgres). Ctrl-C stops everything it started, services first.
#
#   ./run.sh [--postgres] [--release]
#
# Service logs are printed here, each line prefixed with the service's name.
set -euo pipefail
cd "$(dirname "$0")"

postgres=false
profile=debug
cargo_profile=()
for arg in "$@"; do
  case $arg in
    --postgres) postgres=true ;;
    --release) profile=release; cargo_profile=(--release) ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $arg (see ./run.sh --help)" >&2; exit 2 ;;
  esac
done

# Start order: the gateway last, once everything behind it answers.
services=(user-service order-service inventory-service payment-service notification-service gateway)
declare -A port=([gateway]=8080 [user-service]=8081 [order-service]=8082 [inventory-service]=8083
  [payment-service]=8084 [notification-service]=8085)

log() { printf '[run] %s\n' "$*" >&2; }

components=(kafka zipkin)
$postgres && components+=(postgres)
# Leave running what was running before: stop only what this script starts.
started=()
for c in "${components[@]}"; do stack/stack.sh running "$c" || started+=("$c"); done

declare -A pid=()
stopping=false
shutdown() {
  $stopping && return
  stopping=true
  trap '' INT TERM
  local s
  for s in "${!pid[@]}"; do kill -TERM "${pid[$s]}" 2>/dev/null || true; done
  for s in "${!pid[@]}"; do wait "${pid[$s]}" 2>/dev/null || true; done
  ((${#started[@]})) && stack/stack.sh stop "${started[@]}"
  log "stopped"
}
trap 'shutdown; exit 130' INT
trap 'shutdown; exit 143' TERM
trap shutdown EXIT

log "building the services (cargo build ${cargo_profile[*]})"
cargo build --bins --locked "${cargo_profile[@]}"
target=${CARGO_TARGET_DIR:-target}/$profile

stack/stack.sh start "${components[@]}"
bootstrap=$(stack/stack.sh bootstrap)

mkdir -p data
for s in "${services[@]}"; do
  db=${s//-/_}
  if $postgres; then url="postgres://postgres@127.0.0.1:${PG_PORT:-5432}/$db"; else url="sqlite://data/$s.db?mode=rwc"; fi
  # The gateway owns no database; DATABASE_URL is simply not read there.
  DATABASE_URL=$url KAFKA_BOOTSTRAP_SERVERS=$bootstrap HTTP_ADDR=127.0.0.1:${port[$s]} \
    "$target/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  pid[$s]=$!
done

healthy() { curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1; }
for s in "${services[@]}"; do
  deadline=$((SECONDS + 60))
  until healthy "${port[$s]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null || { log "$s exited during start-up (its log is above)"; exit 1; }
    ((SECONDS < deadline)) || { log "$s did not answer /health on :${port[$s]} within 60 s"; exit 1; }
    sleep 0.2
  done
done

cat >&2 <<EOF

  The system is up ($($postgres && echo PostgreSQL || echo SQLite under ./data/)). Ctrl-C stops everything.

  gateway               http://127.0.0.1:8080   (requests to try: http-tests/)
  user-service          http://127.0.0.1:8081
  order-service         http://127.0.0.1:8082
  inventory-service     http://127.0.0.1:8083
  payment-service       http://127.0.0.1:8084
  notification-service  http://127.0.0.1:8085
  Zipkin                http://127.0.0.1:${ZIPKIN_PORT:-9411}/zipkin/
  Kafka                 $bootstrap   (stack/bin/kafka-topics.sh --bootstrap-server $bootstrap --list)

EOF

# Any service that dies takes the system down with it, loudly: half a saga is no demo.
wait -n "${pid[@]}" && code=0 || code=$?
if ! $stopping; then
  for s in "${!pid[@]}"; do
    kill -0 "${pid[$s]}" 2>/dev/null || log "$s exited (code $code): stopping the system"
  done
  exit 1
fi
