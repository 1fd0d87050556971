#!/usr/bin/env bash
# Builds and runs the whole system on this machine, in the foreground: Kafka (KRaft) and
# Zipkin from Maven Central's jars, every service on its own SQLite file under ./data/
# (or on PostgreSQL with --postgres). Ctrl-C stops everything it started, services first.
#
# It supervises the services: one that dies (kill -9 it and see) is started again at
# once, with a line saying so and how often; one that keeps dying right after it starts
# (three times in a row within 15 s of starting) stops the system, with the reason. One
# that stops cleanly (exit code 0: asked to, by `kill <pid>`) stops the system, as Ctrl-C.
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
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $arg (see ./run.sh --help)" >&2; exit 2 ;;
  esac
done

# services and port[name] from the registry; start order: the gateway last, once
# everything behind it answers.
source services/registry.sh

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
# The admin account user-service creates at start (CONTRACT: change the password for
# anything but a demo: ADMIN_PASSWORD=... ./run.sh).
export ADMIN_EMAIL=${ADMIN_EMAIL:-admin@example.com} ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin-password}
# Seven services share this machine's cores: with one Tokio worker each they spend less on
# waking and stealing between workers (README "Figures"). A service on cores of its own
# keeps Tokio's default of one worker per core.
export TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-1}
declare -A started_at=() restarts=() quick_deaths=()
start_service() {
  local s=$1 db=${1//-/_} url
  if $postgres; then url="postgres://postgres@127.0.0.1:${PG_PORT:-5432}/$db"; else url="sqlite://data/$s.db?mode=rwc"; fi
  # The gateway owns no database; DATABASE_URL is simply not read there. A static member
  # name: a service started again takes its partitions back at once, not after a
  # session timeout and a rebalance.
  DATABASE_URL=$url KAFKA_BOOTSTRAP_SERVERS=$bootstrap HTTP_ADDR=127.0.0.1:${port[$s]} KAFKA_GROUP_INSTANCE_ID=$s-1 \
    "$target/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  pid[$s]=$!
  started_at[$s]=$SECONDS
}
for s in "${services[@]}"; do
  start_service "$s"
  restarts[$s]=0 quick_deaths[$s]=0
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

{
  printf '\n  The system is up (%s). Ctrl-C stops everything.\n\n' "$($postgres && echo PostgreSQL || echo SQLite under ./data/)"
  printf '  %-21s http://127.0.0.1:%s   (requests to try: http-tests/)\n' gateway "${port[gateway]}"
  for s in "${api_services[@]}"; do printf '  %-21s http://127.0.0.1:%s\n' "$s" "${port[$s]}"; done
  printf '  %-21s http://127.0.0.1:%s/zipkin/\n' Zipkin "${ZIPKIN_PORT:-9411}"
  printf '  %-21s %s   (stack/bin/kafka-topics.sh --bootstrap-server %s --list)\n\n' Kafka "$bootstrap" "$bootstrap"
} >&2

# A service that dies is started again at once: what it had not finished is redelivered
# to the new process (Kafka offsets, the outbox), which is what this system is built for.
# Three quick deaths in a row mean it cannot run: stop, rather than restart forever.
QUICK_DEATH_S=15 QUICK_DEATHS_MAX=3
describe_exit() {
  local code=$1
  if ((code > 128)); then echo "killed by SIG$(kill -l $((code - 128)) 2>/dev/null || echo $((code - 128)))"; else echo "exit code $code"; fi
}
service_of() {
  local s
  for s in "${!pid[@]}"; do
    if [[ ${pid[$s]} == "$1" ]]; then echo "$s"; return; fi
  done
}
while true; do
  ended= code=0
  wait -n -p ended "${pid[@]}" || code=$?
  $stopping && break
  s=$(service_of "$ended")
  [[ -n $s ]] || { sleep 0.2; continue; }
  lived=$((SECONDS - started_at[$s]))
  # Exit code 0 is a service that was asked to stop: by `kill <pid>`, or by a Ctrl-C that
  # reached the services while this script's trap did not run (seen in CI, twice, right
  # after a restart). Either way the user wants it stopped: the system stops, as on Ctrl-C.
  if ((code == 0)); then
    log "$s stopped cleanly after ${lived} s (asked to stop): stopping the system, as Ctrl-C does"
    exit 0
  fi
  if ((lived < QUICK_DEATH_S)); then quick_deaths[$s]=$((quick_deaths[$s] + 1)); else quick_deaths[$s]=0; fi
  if ((quick_deaths[$s] >= QUICK_DEATHS_MAX)); then
    log "!!! $s died $QUICK_DEATHS_MAX times within ${QUICK_DEATH_S} s of starting (last: $(describe_exit "$code")): it cannot run, stopping the system (its log is above)"
    exit 1
  fi
  restarts[$s]=$((restarts[$s] + 1))
  log "!!! $s died ($(describe_exit "$code")) after ${lived} s: starting it again (restart #${restarts[$s]})"
  start_service "$s"
done
