#!/usr/bin/env bash
# Runs every test of the system against the real stack, then stops what it started:
#   1. starts Kafka, Zipkin and PostgreSQL (resolving/installing them on first use),
#   2. builds everything once,
#   3. runs the whole suite with SQLite databases,
#   4. runs it again from the same build with PostgreSQL databases (TEST_DATABASE=postgres),
#   5. runs ./run.sh as a user would, checks every service answers, runs
#      http-tests/api-test.http against it with httpyac (npm), drives the saga board's
#      page in Debian's Chromium (tests/browser: playwright-core from npm), checks each service's
#      OpenAPI document with openapi-spec-validator (PyPI) and the service against it with
#      schemathesis (PyPI), kill -9s order-service and
#      waits for run.sh to start it again, and stops it all with Ctrl-C,
#   6. runs tools/chaos.sh: services and the broker SIGKILLed under load, then every
#      invariant checked (on SQLite, then on PostgreSQL: about 4 minutes), and
#      tools/chaos-scale.sh: two instances of each service on a 3-broker cluster, a broker
#      and one instance of each service SIGKILLed under load (about 3 minutes),
#   7. starts docker-compose.yml for real on Docker Engine (tools/compose-ci.sh: stand-ins
#      for the registry's images, the project's image from its Dockerfile), runs
#      http-tests/api-test.http through the gateway container, takes it down, and
#      validates both compose files with docker-compose config.
# A part of the stack that does not come up fails the run; no test skips for want of it.
#
#   ./test.sh [cargo test filter...]     (a filter runs only the matching tests, steps 3-4)
set -euo pipefail
cd "$(dirname "$0")"
# services, api_services and port[name], from services/registry.txt.
source services/registry.sh

log() { printf '\n[test] %s\n' "$*" >&2; }

components=(kafka zipkin postgres)
started=()
for c in "${components[@]}"; do stack/stack.sh running "$c" || started+=("$c"); done
cleanup() {
  ((${#started[@]})) && stack/stack.sh stop "${started[@]}"
  return 0
}
trap cleanup EXIT

log "starting the stack: ${components[*]}"
stack/stack.sh start "${components[@]}"
export KAFKA_BOOTSTRAP_SERVERS
KAFKA_BOOTSTRAP_SERVERS=$(stack/stack.sh bootstrap)
export ZIPKIN_URL="http://127.0.0.1:${ZIPKIN_PORT:-9411}"
export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:${PG_PORT:-5432}/postgres"

log "building (once, for both database modes and for run.sh)"
cargo build --workspace --all-targets --locked

results=$(mktemp)
run_suite() {
  local mode=$1; shift
  log "test suite on $mode"
  # --no-fail-fast: one red test should not hide the others.
  TEST_DATABASE=$mode cargo test --workspace --locked --no-fail-fast -- "$@" 2>&1 | tee -a "$results"
  return "${PIPESTATUS[0]}"
}

status=0
run_suite sqlite "$@" || status=1
run_suite postgres "$@" || status=1

# The seeds' production layout: 3 brokers, replication factor 3, min ISR 2. Started beside
# the single broker on ports of its own, checked through the Kafka tests, then stopped.
# `--workspace`, as the build above: `-p platform` alone unifies other features and
# rebuilds every dependency.
three_brokers() {
  local port=${KAFKA3_PORT:-19092}
  log "Kafka tests on a 3-broker cluster (127.0.0.1:$port, :$((port + 2)), :$((port + 4)))"
  KAFKA_BROKERS=3 KAFKA_PORT=$port stack/stack.sh start kafka || return 1
  local rc=0
  KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_BROKERS=3 KAFKA_PORT=$port stack/stack.sh bootstrap) KAFKA_REPLICATION_FACTOR=3 \
    cargo test --workspace --locked --test integration kafka_roundtrip 2>&1 | tee -a "$results" || rc=1
  # Scaled out on that cluster: two instances of every service on PostgreSQL, a broker
  # and one instance of each service SIGKILLed under load (about 3 minutes).
  log "scale-out chaos run: 2 instances of each service, 3 brokers, kills under load"
  KAFKA3_PORT=$port tools/chaos-scale.sh --duration 60 --rate 20 2>&1 | tee -a "$results" || rc=1
  KAFKA_BROKERS=3 KAFKA_PORT=$port stack/stack.sh stop kafka
  return $rc
}

# The requests users try, run for real through the gateway; each `??` line asserts.
HTTPYAC_VERSION=6.16.7
api_test() {
  local dir=${HTTPYAC_DIR:-$HOME/.cache/order-system/httpyac-$HTTPYAC_VERSION} out
  if [[ ! -x $dir/node_modules/.bin/httpyac ]]; then
    log "installing httpyac $HTTPYAC_VERSION from the npm registry"
    npm install --prefix "$dir" --no-audit --no-fund --silent "httpyac@$HTTPYAC_VERSION" >&2 || return 1
  fi
  out=$(mktemp)
  local rc=0
  (cd http-tests && "$dir/node_modules/.bin/httpyac" send api-test.http --all -o none) >"$out" 2>&1 || rc=$?
  local summary
  summary=$(grep -Eo '[0-9]+ requests processed \([0-9]+ succeeded(, [0-9]+ failed)?\)' "$out" | tail -1)
  local passed failed
  passed=$(grep -Eo '[0-9]+ succeeded' <<<"$summary" | grep -Eo '[0-9]+' || echo 0)
  failed=$(grep -Eo '[0-9]+ failed' <<<"$summary" | grep -Eo '[0-9]+' || echo 0)
  if ((rc != 0)) || [[ -z $summary ]]; then
    grep -E '✖|ERROR|Error' "$out" >&2 || cat "$out" >&2
    ((failed == 0)) && failed=1
  fi
  echo "api-test.http: ${passed:-0} passed, ${failed:-0} failed"
  rm -f "$out"
  ((failed == 0))
}

# Each service's OpenAPI document, as the gateway serves it to Swagger UI, is checked
# against the OpenAPI specification.
OPENAPI_VALIDATOR_VERSION=0.9.0
openapi_documents() {
  local venv=${OPENAPI_VALIDATOR_DIR:-$HOME/.cache/order-system/openapi-spec-validator-$OPENAPI_VALIDATOR_VERSION}
  if [[ ! -x $venv/bin/openapi-spec-validator ]]; then
    log "installing openapi-spec-validator $OPENAPI_VALIDATOR_VERSION from PyPI"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"; } >&2 \
      || { echo "openapi: 0 passed, 1 failed"; return 1; }
  fi
  local service passed=0 failed=0 doc
  doc=$(mktemp)
  for service in "${api_services[@]}"; do
    if curl -sf "http://127.0.0.1:${port[gateway]}/openapi/$service.json" -o "$doc" \
      && "$venv/bin/openapi-spec-validator" "$doc" >/dev/null; then
      ((passed += 1))
    else
      echo "the OpenAPI document of $service is missing or invalid" >&2
      "$venv/bin/openapi-spec-validator" "$doc" >&2 || true
      ((failed += 1))
    fi
  done
  rm -f "$doc"
  echo "openapi: $passed passed, $failed failed"
  ((failed == 0))
}

# Each service's API against its own document, with schemathesis (PyPI): 30 generated
# requests per operation, valid and invalid, and all its checks. A valid request must be
# accepted, an invalid one refused, every answer documented and none a 5xx: the document
# says what the API enforces. Runs as the admin, who may call every operation. The board's
# event stream is left out: it never ends, so each request would wait for its timeout (the
# board's system test and the browser test read it). tests/schemathesis/hooks.py gives
# each valid Idempotency-Key a fresh value, as a client does.
SCHEMATHESIS_VERSION=4.32.5
api_conformance() {
  local venv=${SCHEMATHESIS_DIR:-$HOME/.cache/order-system/schemathesis-$SCHEMATHESIS_VERSION}
  if [[ ! -x $venv/bin/st ]]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"; } >&2 \
      || { echo "schemathesis: 0 passed, 1 failed"; return 1; }
  fi
  local token service passed=0 failed=0
  token=$(curl -sf "http://127.0.0.1:${port[gateway]}/api/auth/token" -H 'Content-Type: application/json' \
    -d '{"email": "admin@example.com", "password": "admin-password"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])') \
    || { echo "no admin token for schemathesis" >&2; echo "schemathesis: 0 passed, 1 failed"; return 1; }
  for service in "${api_services[@]}"; do
    log "schemathesis: $service"
    if PYTHONPATH=tests/schemathesis SCHEMATHESIS_HOOKS=hooks \
      "$venv/bin/st" run "http://127.0.0.1:${port[gateway]}/openapi/$service.json" \
      --url "http://127.0.0.1:${port[$service]}" -H "Authorization: Bearer $token" \
      --checks all --max-examples 30 --generation-database none --request-timeout 20 \
      --exclude-path /api/board/stream \
      --no-color >&2; then
      ((passed += 1))
    else
      echo "schemathesis found where $service and its document disagree (above)" >&2
      ((failed += 1))
    fi
  done
  echo "schemathesis: $passed passed, $failed failed"
  ((failed == 0))
}

# The saga board page in a real Chromium: signs in, follows orders, a compensation and a
# replayed poison message live (tests/browser/run.sh installs Chromium and playwright-core).
board_page() {
  if tests/browser/run.sh >&2; then
    echo "board page: 1 passed, 0 failed"
  else
    echo "board page: 0 passed, 1 failed"
    return 1
  fi
}

# kill -9 of a service under run.sh: it is started again at once, says so, and answers.
killed_service_comes_back() {
  local out=$1 victim deadline
  victim=$(ss -ltnpH 'sport = :8082' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [[ -n $victim ]] || { echo "no process listens on :8082" >&2; return 1; }
  kill -KILL "$victim"
  deadline=$((SECONDS + 60))
  until grep -q 'order-service died (killed by SIGKILL) after [0-9]* s: starting it again (restart #1)' "$out" \
    && curl -sf http://127.0.0.1:8082/ready >/dev/null; do
    if ((SECONDS > deadline)); then
      echo "order-service was not started again within 60 s of kill -9" >&2
      return 1
    fi
    sleep 0.5
  done
}

smoke_run_sh() {
  log "./run.sh as users run it: every service answers /health, Ctrl-C stops everything"
  local out ok=0 failed=0 s deadline pgid
  out=$(mktemp)
  # Job control gives run.sh its own process group, which is what a terminal's Ctrl-C
  # signals; without it a background script would ignore SIGINT.
  set -m
  ./run.sh >"$out" 2>&1 &
  pgid=$!
  set +m
  deadline=$((SECONDS + 120))
  until grep -q 'The system is up' "$out"; do
    if ! kill -0 "$pgid" 2>/dev/null || ((SECONDS > deadline)); then
      cat "$out" >&2
      echo "run.sh did not bring the system up" >&2
      echo "run.sh: 0 passed, 1 failed"
      return 1
    fi
    sleep 0.5
  done
  for s in "${services[@]}"; do
    if curl -sf "http://127.0.0.1:${port[$s]}/health" >/dev/null; then ((ok += 1)); else
      echo "no /health from $s on :${port[$s]}" >&2; ((failed += 1))
    fi
  done
  api_test || ((failed += 1))
  board_page || ((failed += 1))
  openapi_documents || ((failed += 1))
  api_conformance || ((failed += 1))
  if killed_service_comes_back "$out"; then ((ok += 1)); else ((failed += 1)); fi
  kill -INT -- "-$pgid"
  deadline=$((SECONDS + 60))
  while kill -0 "$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
  if kill -0 "$pgid" 2>/dev/null; then
    echo "run.sh did not stop within 60 s of Ctrl-C" >&2
    ((failed += 1))
    # Its shutdown may be what hangs, with SIGTERM ignored by then: the whole group goes.
    kill -KILL -- "-$pgid" 2>/dev/null
  fi
  wait "$pgid" 2>/dev/null || true
  for s in "${services[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/${port[$s]}") 2>/dev/null; then
      echo "port ${port[$s]} ($s) still open after Ctrl-C" >&2; ((failed += 1))
    fi
  done
  grep -q '\[run\] stopped' "$out" || { echo "run.sh did not report a clean stop" >&2; ((failed += 1)); }
  ((failed == 0)) || cat "$out" >&2
  echo "run.sh: $ok passed, $failed failed"
  ((failed == 0))
}
# A short chaos run: services and the broker killed under load, then the invariants.
chaos() {
  log "chaos run: SIGKILL and restart services and the broker under load, then check every invariant"
  tools/chaos.sh --duration 60 --rate 20 --kills 8 || return 1
  log "chaos run on PostgreSQL"
  tools/chaos.sh --postgres --duration 40 --rate 20 --kills 6
}
if (($# == 0)); then
  three_brokers || status=1
  smoke_run_sh | tee -a "$results" || status=1
  chaos | tee -a "$results" || status=1
fi

# `docker compose up` for real on Docker Engine: tools/compose-ci.sh builds stand-ins for
# the images no registry gives here and the project's image from its own Dockerfile,
# starts every container and waits until each is healthy; then http-tests/api-test.http
# runs through the gateway container, and `docker compose down -v`. The gateway takes
# :8080, which run.sh has given up by now.
compose_up() {
  log "docker compose up on Docker Engine (tools/compose-ci.sh), api-test.http through the gateway container"
  local rc=0
  COMPOSE_CI_PUBLISH="kafka postgres gateway" tools/compose-ci.sh --keep-up || rc=1
  if ((rc == 0)); then
    api_test | sed -u 's/^api-test\.http:/api-test.http through compose:/' || rc=1
  fi
  tools/compose-ci.sh down >&2 || rc=1
  return $rc
}
if (($# == 0)); then
  compose_up | tee -a "$results" || status=1
fi

# Both compose files, the 3-broker one too, checked as docker-compose reads them.
compose_config() {
  log "docker-compose.yml (and with docker-compose.3-brokers.yml): validated with docker-compose config"
  if ! command -v docker-compose >/dev/null; then
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq docker-compose; } >&2 \
      || { echo "docker-compose.yml: 0 passed, 1 failed"; return 1; }
  fi
  local passed=0 failed=0 listed name
  for files in "-f docker-compose.yml" "-f docker-compose.yml -f docker-compose.3-brokers.yml"; do
    # shellcheck disable=SC2086 # two words per file on purpose
    if listed=$(docker-compose $files config --services) && docker-compose $files config -q; then
      for name in kafka kafka-ui zipkin postgres "${services[@]}"; do
        grep -qx "$name" <<<"$listed" || { echo "$files: no service $name" >&2; ((failed += 1)); }
      done
      ((passed += 1))
    else
      echo "docker-compose $files is invalid" >&2
      ((failed += 1))
    fi
  done
  # Read whole, then searched: `config | grep -q` under pipefail failed whenever grep
  # stopped reading before docker-compose had written every name (SIGPIPE).
  listed=$(docker-compose -f docker-compose.yml -f docker-compose.3-brokers.yml config --services) || listed=
  grep -qx kafka-3 <<<"$listed" || { echo "the 3-broker file adds no kafka-3" >&2; ((failed += 1)); }
  echo "docker-compose.yml: $passed passed, $failed failed"
  ((failed == 0))
}
if (($# == 0)); then
  compose_config | tee -a "$results" || status=1
fi

# The stack goes down before the summary, so the summary is the run's last line.
cleanup
started=()

# One closing line for the whole run, summed over every cargo test binary and run.sh.
summaries=$(grep -E '^(test result: |run\.sh: |api-test\.http: |board page: |openapi: |schemathesis: |chaos: |chaos-scale: |compose up: |api-test\.http through compose: |docker-compose\.yml: )' "$results" || true)
passed=$(grep -Eo '[0-9]+ passed' <<<"$summaries" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' <<<"$summaries" | awk '{s += $1} END {print s + 0}')
rm -f "$results"
echo
echo "test.sh: $passed passed, $failed failed"
if ((status != 0 || failed != 0)); then exit 1; fi
