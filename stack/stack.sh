#!/usr/bin/env bash
# The local stack without Docker: Apache Kafka in KRaft mode and the Zipkin server, both
# from Maven Central's jars run on the machine's Java 17, and PostgreSQL from Debian's
# packages. Everything it writes lives in .stack/ (ignored); Maven's local repository
# (~/.m2) is reused between clones, so only the first start on a machine downloads.
#
#   stack/stack.sh start [kafka] [zipkin] [postgres]   start (default: kafka zipkin); waits until each answers
#   stack/stack.sh stop  [kafka] [zipkin] [postgres]   stop (default: all)
#   stack/stack.sh status                              what runs, where
#   stack/stack.sh running COMPONENT...                exit 0 if all of them run
#   stack/stack.sh logs kafka|zipkin|postgres          follow a component's log
#   stack/stack.sh install [kafka] [zipkin] [postgres] resolve jars / install packages only
#   stack/stack.sh cli CLASS [ARGS...]                 run a Kafka tool (see stack/bin/)
#
# Environment: KAFKA_BROKERS=1|3 (3: a cluster on one host, replication factor 3, min ISR 2),
# KAFKA_PORT (9092), ZIPKIN_PORT (9411), PG_PORT (5432), STACK_DIR (.stack),
# PG_STAT_STATEMENTS=1 (PostgreSQL counts the statements of every database, shown by the
# pg_stat_statements view in the `postgres` database, as the README's statement figures
# are taken; it costs the server a little CPU).
# Starting what already runs is harmless: it is reported and left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${STACK_DIR:-$ROOT/.stack}
KAFKA_SHAPE_SET=${KAFKA_BROKERS:-}${KAFKA_PORT:-}
KAFKA_BROKERS=${KAFKA_BROKERS:-1}
KAFKA_PORT=${KAFKA_PORT:-9092}
ZIPKIN_PORT=${ZIPKIN_PORT:-9411}
PG_PORT=${PG_PORT:-5432}
# One database per service that owns data (the gateway owns none), from the registry.
read -r -a PG_DATABASES <<<"$(source "$ROOT/services/registry.sh" && echo "${databases[*]}")"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

case $KAFKA_BROKERS in 1|3) ;; *) die "KAFKA_BROKERS must be 1 or 3, not '$KAFKA_BROKERS'" ;; esac

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits up to $2 seconds for the command "$3..." to succeed; fails early if pid file $1 dies.
wait_for() {
  local pidfile=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [[ -n $pidfile ]] && ! pid_alive "$pidfile"; then return 1; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# Writes the runtime classpath of a checked-in pom to $2, resolving (and on the first run
# downloading) through Maven. Skipped while the pom is unchanged since the last resolve.
resolve_classpath() {
  local pom=$1 out=$2 stamp
  stamp=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -s $out && -f $out.stamp && $(cat "$out.stamp") == "$stamp" ]] && classpath_present "$out"; then
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  log "resolving $(basename "$(dirname "$pom")") jars from Maven Central (first run on this machine downloads them)"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:build-classpath -Dmdep.includeScope=runtime \
    -Dmdep.outputFile="$out" >"$out.log" 2>&1 || { cat "$out.log" >&2; die "Maven could not resolve $pom"; }
  echo "$stamp" >"$out.stamp"
}

classpath_present() {
  local jar
  IFS=: read -ra jars <"$1"
  for jar in "${jars[@]}"; do [[ -f $jar ]] || return 1; done
}

install_kafka() { resolve_classpath "$ROOT/stack/kafka/pom.xml" "$STATE/kafka/classpath"; }
install_zipkin() { resolve_classpath "$ROOT/stack/zipkin/pom.xml" "$STATE/zipkin/classpath"; }

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/pg_ctl ]] && { echo "$d"; return 0; }
  done
  return 1
}

install_postgres() {
  pg_bindir >/dev/null && return 0
  log "installing PostgreSQL from Debian's packages"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >&2 \
    || die "apt-get install postgresql failed"
  pg_bindir >/dev/null || die "PostgreSQL installed, but no pg_ctl under /usr/lib/postgresql"
}

# JVM options of the broker ($1 = broker) or of a short-lived tool ($1 = tool), which starts
# noticeably faster without the optimising JIT and logs warnings to stderr only.
java_opts() {
  if [[ $1 == broker ]]; then
    echo "-Djava.awt.headless=true -XX:+UseG1GC -Dlog4j2.configurationFile=$ROOT/stack/kafka/log4j2.properties"
  else
    echo "-Djava.awt.headless=true -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile=$ROOT/stack/kafka/tools-log4j2.properties"
  fi
}

# ---------------------------------------------------------------------------- Kafka

# One folder per cluster shape, so a 3-broker cluster on other ports can run beside the
# single broker (./test.sh does that) without sharing any state.
kafka_cluster_dir() { echo "$STATE/kafka/${KAFKA_BROKERS}x$KAFKA_PORT"; }
kafka_node_dir() { echo "$(kafka_cluster_dir)/node-$1"; }
kafka_bootstrap() {
  local i out=()
  for ((i = 0; i < KAFKA_BROKERS; i++)); do out+=("127.0.0.1:$((KAFKA_PORT + 2 * i))"); done
  (IFS=,; echo "${out[*]}")
}

kafka_write_config() {
  local node=$1 dir port cport voters="" rf isr i
  dir=$(kafka_node_dir "$node")
  port=$((KAFKA_PORT + 2 * (node - 1)))
  cport=$((port + 1))
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$((KAFKA_PORT + 2 * (i - 1) + 1))"
  done
  if ((KAFKA_BROKERS == 3)); then rf=3 isr=2; else rf=1 isr=1; fi
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
# Written by stack/stack.sh: one combined broker + controller of a $KAFKA_BROKERS-node KRaft cluster.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# A broker that dies is fenced, and its partitions led elsewhere, once it has missed its
# heartbeats to the controller for this long (9 s by default): the longest stall a
# killed broker causes. 1 s heartbeats keep 4.5 s clear of a loaded machine's pauses.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4500
# Services create their topics at start; a typo in a topic name should fail, not create one.
auto.create.topics.enable=false
EOF
}

kafka_running() {
  local i
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do pid_alive "$(kafka_node_dir "$i")/pid" || return 1; done
}

kafka_started() { grep -q 'Kafka Server started' "$1/logs/server.log" 2>/dev/null && port_open "$2"; }

start_kafka() {
  install_kafka
  local cp cluster_id_file cluster_id i dir port launched=()
  cp=$(cat "$STATE/kafka/classpath")
  cluster_id_file="$(kafka_cluster_dir)/cluster-id"
  mkdir -p "$(dirname "$cluster_id_file")"
  if [[ ! -s $cluster_id_file ]]; then
    java -cp "$cp" $(java_opts tool) kafka.tools.StorageTool random-uuid >"$cluster_id_file"
  fi
  cluster_id=$(tr -d '[:space:]' <"$cluster_id_file")
  for ((i = 1; i <= KAFKA_BROKERS; i++)); do
    dir=$(kafka_node_dir "$i")
    port=$((KAFKA_PORT + 2 * (i - 1)))
    if pid_alive "$dir/pid"; then log "kafka node $i already running on 127.0.0.1:$port"; continue; fi
    port_open "$port" && die "port $port is taken by another process: stop it or set KAFKA_PORT"
    kafka_write_config "$i"
    if [[ ! -f $dir/data/meta.properties ]]; then
      java -cp "$cp" $(java_opts tool) -Dkafka.logs.dir="$dir/logs" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
        || { cat "$dir/logs/format.log" >&2; die "formatting KRaft storage of node $i failed"; }
    fi
    : >"$dir/logs/server.log"
    log "starting kafka node $i on 127.0.0.1:$port"
    # setsid: a Ctrl-C meant for run.sh's foreground must not reach the broker directly;
    # run.sh stops it in order through this script.
    setsid java -cp "$cp" $(java_opts broker) -Xms256m -Xmx${KAFKA_HEAP:-1g} -Dkafka.logs.dir="$dir/logs" \
      kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    launched+=("$i")
  done
  # Only a node launched now is waited for: its server.log was emptied above, whereas a
  # running node's start-up line may have rotated out of server.log long ago.
  for i in "${launched[@]}"; do
    dir=$(kafka_node_dir "$i")
    port=$((KAFKA_PORT + 2 * (i - 1)))
    wait_for "$dir/pid" 120 kafka_started "$dir" "$port" \
      || { tail -n 40 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 || true; die "kafka node $i did not come up"; }
  done
  log "kafka up: bootstrap $(kafka_bootstrap) (KRaft, $KAFKA_BROKERS node(s))"
}

# Sends SIGTERM to every process in the pid files given, then waits for all of them
# (SIGKILL after 20 s). Signalling all first matters for a KRaft cluster: a node that
# stops alone after its peers waits in vain for the quorum, and the last one standing may
# still wait for it: a broker's log recovers from a kill at the next start.
stop_pidfiles() {
  local name=$1 pidfile pids=() label
  shift
  for pidfile in "$@"; do
    if pid_alive "$pidfile"; then
      pids+=("$(cat "$pidfile")")
      label=$(basename "$(dirname "$pidfile")")
      [[ $label == "$name" ]] && label="" || label=" $label"
      log "stopping $name$label (pid ${pids[-1]})"
      kill -TERM "${pids[-1]}" 2>/dev/null || true
    fi
  done
  local deadline=$((SECONDS + 20)) pid
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS > deadline)); then log "pid $pid did not stop in 20 s: killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.3
    done
  done
  rm -f "$@"
}

# Stops the cluster that KAFKA_BROKERS and KAFKA_PORT name, or every cluster when
# neither is set.
stop_kafka() {
  local i pidfiles=()
  if [[ -n $KAFKA_SHAPE_SET ]]; then
    for ((i = 1; i <= KAFKA_BROKERS; i++)); do pidfiles+=("$(kafka_node_dir "$i")/pid"); done
  else
    shopt -s nullglob
    pidfiles=("$STATE"/kafka/*/node-*/pid)
    shopt -u nullglob
  fi
  stop_pidfiles kafka "${pidfiles[@]}"
}

# ---------------------------------------------------------------------------- Zipkin

zipkin_healthy() { curl -sf "http://127.0.0.1:$ZIPKIN_PORT/health" >/dev/null 2>&1; }

start_zipkin() {
  install_zipkin
  local dir="$STATE/zipkin"
  if pid_alive "$dir/pid"; then log "zipkin already running on http://127.0.0.1:$ZIPKIN_PORT"; return 0; fi
  port_open "$ZIPKIN_PORT" && die "port $ZIPKIN_PORT is taken by another process: stop it or set ZIPKIN_PORT"
  log "starting zipkin on http://127.0.0.1:$ZIPKIN_PORT"
  # KAFKA_BOOTSTRAP_SERVERS in Zipkin's environment would switch on its own Kafka collector.
  # In-memory storage keeps MEM_MAX_SPANS spans (500000 by default, more than a 512 MB
  # heap holds: under load Zipkin then did nothing but full GCs, taking a core from the
  # system it traces); 100000 spans are the last few thousand orders.
  env -u KAFKA_BOOTSTRAP_SERVERS STORAGE_TYPE=mem MEM_MAX_SPANS="${ZIPKIN_MAX_SPANS:-100000}" QUERY_PORT="$ZIPKIN_PORT" \
    setsid java -Xms128m -Xmx512m -XX:+UseG1GC -jar "$(cat "$dir/classpath")" \
    --armeria.ports[0].ip=127.0.0.1 --armeria.ports[0].port="$ZIPKIN_PORT" \
    --armeria.ports[0].protocols[0]=http >"$dir/zipkin.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  wait_for "$dir/pid" 120 zipkin_healthy || { tail -n 40 "$dir/zipkin.log" >&2; die "zipkin did not come up"; }
  log "zipkin up: http://127.0.0.1:$ZIPKIN_PORT"
}

stop_zipkin() { stop_pidfiles zipkin "$STATE/zipkin/pid"; }

# ---------------------------------------------------------------------------- PostgreSQL

# The server refuses to run as root; as root it runs as the package's `postgres` user.
pg_as() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_dir() { echo "$STATE/postgres"; }

pg_running() { [[ -f $(pg_dir)/data/postmaster.pid ]] && pg_as "$(pg_bindir)/pg_ctl" -D "$(pg_dir)/data" status >/dev/null 2>&1; }

start_postgres() {
  install_postgres
  local bin dir db
  bin=$(pg_bindir)
  dir=$(pg_dir)
  mkdir -p "$dir/run"
  ((EUID == 0)) && chown -R postgres:postgres "$dir"
  if pg_running; then
    log "postgres already running on 127.0.0.1:$PG_PORT"
  else
    port_open "$PG_PORT" && die "port $PG_PORT is taken by another process: stop it or set PG_PORT"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      pg_as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    local options="-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir/run -c max_connections=300"
    [[ ${PG_STAT_STATEMENTS:-} == 1 ]] && options+=" -c shared_preload_libraries=pg_stat_statements"
    log "starting postgres on 127.0.0.1:$PG_PORT"
    pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$options" start >/dev/null \
      || { tail -n 40 "$dir/postgres.log" >&2; die "postgres did not come up"; }
  fi
  # A server keeps what it loaded at its start: say so, whatever this start asked for.
  if [[ $(psql_q "SHOW shared_preload_libraries") == *pg_stat_statements* ]]; then
    psql_q "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    log "postgres counts statements (pg_stat_statements in database postgres)"
  elif [[ ${PG_STAT_STATEMENTS:-} == 1 ]]; then
    die "PG_STAT_STATEMENTS=1, but the running server was started without pg_stat_statements: stack/stack.sh stop postgres, then start it again"
  fi
  for db in "${PG_DATABASES[@]}"; do
    if [[ -z $(psql_q "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
      psql_q "CREATE DATABASE $db" >/dev/null
    fi
  done
  log "postgres up: postgres://postgres@127.0.0.1:$PG_PORT/<service> (databases: ${PG_DATABASES[*]})"
}

psql_q() { psql -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }

stop_postgres() {
  pg_bindir >/dev/null || return 0
  pg_running || return 0
  log "stopping postgres"
  pg_as "$(pg_bindir)/pg_ctl" -D "$(pg_dir)/data" -m fast -w stop >/dev/null
}

# ---------------------------------------------------------------------------- commands

status() {
  local up=0
  if kafka_running; then echo "kafka     up    $(kafka_bootstrap) ($KAFKA_BROKERS node(s))"; else echo "kafka     down"; up=1; fi
  if pid_alive "$STATE/zipkin/pid" && zipkin_healthy; then echo "zipkin    up    http://127.0.0.1:$ZIPKIN_PORT"; else echo "zipkin    down"; up=1; fi
  if pg_bindir >/dev/null && pg_running; then echo "postgres  up    127.0.0.1:$PG_PORT"; else echo "postgres  down"; fi
  return $up
}

logs() {
  case ${1:-} in
    kafka) tail -n 100 -F "$(kafka_node_dir "${2:-1}")/logs/server.log" ;;
    zipkin) tail -n 100 -F "$STATE/zipkin/zipkin.log" ;;
    postgres) tail -n 100 -F "$(pg_dir)/postgres.log" ;;
    *) die "usage: stack.sh logs kafka [NODE]|zipkin|postgres" ;;
  esac
}

cli() {
  (($# >= 1)) || die "usage: stack.sh cli CLASS [ARGS...]"
  install_kafka
  local class=$1; shift
  exec java -cp "$(cat "$STATE/kafka/classpath")" $(java_opts tool) -Xmx512m "$class" "$@"
}

components() {
  local c
  for c in "$@"; do
    case $c in kafka|zipkin|postgres) ;; *) die "unknown component '$c' (kafka, zipkin, postgres)" ;; esac
  done
}

cmd=${1:-}
shift || true
case $cmd in
  start)
    (($#)) || set -- kafka zipkin
    components "$@"
    for c in "$@"; do "start_$c"; done
    ;;
  stop)
    (($#)) || set -- kafka zipkin postgres
    components "$@"
    for c in "$@"; do "stop_$c"; done
    ;;
  install)
    (($#)) || set -- kafka zipkin postgres
    components "$@"
    for c in "$@"; do "install_$c"; done
    ;;
  status) status ;;
  running)
    # Exit 0 when every named component runs (for scripts that stop only what they started).
    (($#)) || die "usage: stack.sh running kafka|zipkin|postgres..."
    components "$@"
    for c in "$@"; do
      case $c in
        kafka) kafka_running ;;
        zipkin) pid_alive "$STATE/zipkin/pid" ;;
        postgres) pg_bindir >/dev/null && pg_running ;;
      esac || exit 1
    done
    ;;
  logs) logs "$@" ;;
  cli) cli "$@" ;;
  bootstrap) kafka_bootstrap ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
