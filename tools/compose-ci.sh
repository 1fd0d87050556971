#!/usr/bin/env bash
# `docker compose up` of the whole system for real, on a machine that reaches no image
# registry (CI here): every image compose would pull is replaced by a stand-in built on
# the machine from Debian's packages and Maven Central's jars, then the stack is started,
# waited for until every container is healthy, and taken down again (volumes too).
#
#   tools/compose-ci.sh [--services "kafka zipkin postgres"] [--brokers 1|3] [--keep-up]
#   tools/compose-ci.sh images      only build the stand-in images
#   tools/compose-ci.sh down        take down what a --keep-up run left
#
# Steps:
#   1. Docker Engine: Debian's docker.io (dockerd 20.10, /usr/bin/docker), docker-compose
#      1.29 and debootstrap are installed when missing; dockerd is started in the
#      background when none answers (and stopped at the end if this script started it).
#      BuildKit (the Dockerfile's cache mounts) comes from /usr/bin/docker with
#      DOCKER_BUILDKIT=1; docker-compose builds through it (COMPOSE_DOCKER_CLI_BUILD=1).
#   2. Stand-ins, under names of their own (order-system-ci/*), rebuilt only when their
#      inputs change: a Debian bookworm base from debootstrap (with the host's CA bundle:
#      HTTPS from a container here needs it), Java 17, Kafka 4.3.1 (stack/kafka/pom.xml),
#      Zipkin (stack/zipkin/pom.xml), PostgreSQL (Debian's), a Rust base (the host's
#      toolchain) for the Dockerfile's build stage. tools/compose-ci/*/Dockerfile.
#   3. docker-compose.yml + tools/compose-ci/override.yml (images swapped, Kafka UI left
#      out), rendered with `config` into a temp dir with the host ports dropped for every
#      service but COMPOSE_CI_PUBLISH's (host ports 8080-8086 and 9411 are the local
#      stack's), then build, `up -d`, wait for health, `down -v`.
#
# Environment: COMPOSE_CI_PUBLISH ("kafka postgres": services whose host ports stay),
#   COMPOSE_CI_PROJECT (order-system-ci), COMPOSE_CI_TIMEOUT (seconds to become healthy,
#   600), COMPOSE_CI_DOCKERD_NICE (niceness of a dockerd this script starts, 10: the
#   builds and containers inherit it), COMPOSE_CI_WORK (/var/tmp/order-system-compose-ci: debootstrap and contexts),
#   COMPOSE_CI_REBUILD=1 (rebuild every stand-in), COMPOSE_CI_CA_BUNDLE (the host's CA
#   bundle, /etc/ssl/certs/ca-certificates.crt), COMPOSE_CI_DEBIAN_MIRROR (else from
#   the machine's apt sources).
# Exit status: 0 when every container started became healthy; non-zero, with the logs of
# the containers that did not, otherwise — and when no Docker Engine can be had.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_DIR=$ROOT/tools/compose-ci
WORK=${COMPOSE_CI_WORK:-/var/tmp/order-system-compose-ci}
PROJECT=${COMPOSE_CI_PROJECT:-order-system-ci}
PUBLISH=${COMPOSE_CI_PUBLISH:-kafka postgres}
TIMEOUT=${COMPOSE_CI_TIMEOUT:-600}
CA_BUNDLE=${COMPOSE_CI_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
SUITE=bookworm

BASE_IMAGE=order-system-ci/debian:bookworm
JRE_IMAGE=order-system-ci/jre:17
KAFKA_IMAGE=order-system-ci/kafka:4.3.1
ZIPKIN_IMAGE=order-system-ci/zipkin:3.6.1
POSTGRES_IMAGE=order-system-ci/postgres:15
RUST_IMAGE=order-system-ci/rust:1.95-bookworm
APP_IMAGE=order-system-ci/order-system:local
RUST_TOOLCHAIN_VERSION=1.95

# Debian's client first: it has BuildKit built in, whereas a newer client without the
# buildx plugin (/usr/local/bin/docker here) can only use the legacy builder, which
# rejects RUN --mount. docker-compose's CLI builds run the `docker` on PATH too.
export PATH=/usr/bin:/usr/sbin:$PATH
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
DOCKER=/usr/bin/docker

log() { printf '[compose-ci] %s\n' "$*" >&2; }
die() { printf '[compose-ci] error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ 1. Docker Engine

STARTED_DOCKERD=""

apt_install() {
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  log "installing $* from Debian's packages"
  "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >&2 \
    || die "apt-get install $* failed: no Docker Engine for this run"
}

ensure_docker() {
  local missing=()
  [[ -x /usr/sbin/dockerd && -x $DOCKER ]] || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v docker-compose >/dev/null || "$DOCKER" compose version >/dev/null 2>&1 || missing+=(docker-compose)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  [[ -x $DOCKER ]] || die "no $DOCKER after installing docker.io"

  if ! "$DOCKER" info >/dev/null 2>&1; then
    ((EUID == 0)) || die "no Docker daemon answers and starting dockerd needs root"
    mkdir -p "$WORK"
    # Niced: containers and BuildKit's build steps run under dockerd and inherit it, so
    # the image's release build yields to whatever else this machine runs.
    log "starting dockerd at nice ${COMPOSE_CI_DOCKERD_NICE:-10} (log: $WORK/dockerd.log)"
    setsid nice -n "${COMPOSE_CI_DOCKERD_NICE:-10}" /usr/sbin/dockerd >"$WORK/dockerd.log" 2>&1 </dev/null &
    STARTED_DOCKERD=$!
    # A --keep-up run leaves it running; the `down` that follows stops it.
    echo "$STARTED_DOCKERD" >"$WORK/dockerd.pid"
    local deadline=$((SECONDS + 60))
    until "$DOCKER" info >/dev/null 2>&1; do
      if ! kill -0 "$STARTED_DOCKERD" 2>/dev/null || ((SECONDS > deadline)); then
        tail -n 30 "$WORK/dockerd.log" >&2 || true
        die "dockerd did not come up: no Docker Engine for this run"
      fi
      sleep 1
    done
  fi
  if "$DOCKER" compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
  else
    COMPOSE=(docker-compose)
  fi
  log "Docker Engine $("$DOCKER" version -f '{{.Server.Version}}'), client $("$DOCKER" version -f '{{.Client.Version}}'), $("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -1)"
}

stop_dockerd() {
  [[ -n $STARTED_DOCKERD ]] || return 0
  log "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
  kill -TERM "$STARTED_DOCKERD" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$STARTED_DOCKERD" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
  rm -f "$WORK/dockerd.pid"
}

# ------------------------------------------------------------------ 2. stand-in images

# The label of an image that says from which inputs it was built ("" when absent).
image_inputs() { "$DOCKER" image inspect -f '{{index .Config.Labels "order-system-ci.inputs"}}' "$1" 2>/dev/null || true; }
image_id() { "$DOCKER" image inspect -f '{{.Id}}' "$1"; }

# True when image $1 must be (re)built for inputs hash $2.
stale() {
  [[ ${COMPOSE_CI_REBUILD:-} == 1 ]] && return 0
  [[ $(image_inputs "$1") != "$2" ]]
}

hash_of() { { for x in "$@"; do if [[ -f $x ]]; then sha256sum "$x"; else echo "$x"; fi; done; } | sha256sum | cut -c1-16; }

# First URI of the machine's apt sources that ends in /$1 (debian, debian-security).
apt_source_uri() {
  grep -hoE "https?://[^ \"]+/$1/?( |$)" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | tr -d ' ' || true
}

build_base() {
  local mirror security hash rootfs
  mirror=${COMPOSE_CI_DEBIAN_MIRROR:-$(apt_source_uri debian)}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=$(apt_source_uri debian-security)
  # (base-1: bump when build_base changes what goes into the image)
  hash=$(hash_of base-1 "$SUITE" "$mirror" "$security" "$CA_BUNDLE")
  stale "$BASE_IMAGE" "$hash" || { log "$BASE_IMAGE: up to date"; return 0; }
  command -v debootstrap >/dev/null || die "debootstrap missing"
  rootfs=$WORK/rootfs
  rm -rf "$rootfs"
  mkdir -p "$WORK"
  log "$BASE_IMAGE: debootstrap --variant=minbase $SUITE from $mirror"
  nice -n 10 debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  {
    echo "deb ${mirror%/} $SUITE main"
    echo "deb ${mirror%/} $SUITE-updates main"
    [[ -z $security ]] || echo "deb ${security%/} $SUITE-security main"
  } >"$rootfs/etc/apt/sources.list"
  # As the official images: no recommends, no apt caches in layers.
  printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90ci-no-recommends"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  # The machine's CA bundle: HTTPS from a container reaches the registries only with it.
  # Kept apart from /etc/ssl/certs, which installing ca-certificates rewrites.
  local ca_env=()
  if [[ -s $CA_BUNDLE ]]; then
    mkdir -p "$rootfs/usr/local/share/ci-host-ca" "$rootfs/etc/ssl/certs"
    cp "$CA_BUNDLE" "$rootfs/usr/local/share/ci-host-ca/ca-certificates.crt"
    cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    local ca=/usr/local/share/ci-host-ca/ca-certificates.crt
    ca_env=(--change "ENV SSL_CERT_FILE=$ca" --change "ENV CURL_CA_BUNDLE=$ca"
      --change "ENV CARGO_HTTP_CAINFO=$ca" --change "ENV GIT_SSL_CAINFO=$ca")
  else
    log "warning: no CA bundle at $CA_BUNDLE: HTTPS from the containers may fail"
  fi
  tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' "${ca_env[@]}" \
    --change "LABEL order-system-ci.inputs=$hash" \
    --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# docker build of image $1 from context dir $2, labelled with inputs hash $3.
docker_build() {
  local image=$1 ctx=$2 hash=$3
  "$DOCKER" build --label "order-system-ci.inputs=$hash" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JRE_IMAGE=$JRE_IMAGE" \
    -t "$image" "$ctx" >"$WORK/build-${image//[\/:]/_}.log" 2>&1 \
    || { tail -n 40 "$WORK/build-${image//[\/:]/_}.log" >&2; die "docker build of $image failed"; }
}

# A fresh build context for one stand-in: its Dockerfile folder's files.
context() {
  local ctx=$WORK/ctx-$1
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "$CI_DIR/$1/." "$ctx/"
  echo "$ctx"
}

build_jre() {
  local hash
  hash=$(hash_of "$(image_id "$BASE_IMAGE")" "$CI_DIR/jre/Dockerfile")
  stale "$JRE_IMAGE" "$hash" || { log "$JRE_IMAGE: up to date"; return 0; }
  log "$JRE_IMAGE: Debian's openjdk-17-jre-headless"
  docker_build "$JRE_IMAGE" "$(context jre)" "$hash"
  rm -rf "$WORK/ctx-jre"
}

# The runtime jars of a stack/ pom, copied by Maven into $2 (from ~/.m2 when there).
maven_jars() {
  local pom=$1 out=$2
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$out"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$out" >"$WORK/mvn.log" 2>&1 || { cat "$WORK/mvn.log" >&2; die "Maven could not resolve $pom"; }
}

build_kafka() {
  local hash ctx
  hash=$(hash_of "$(image_id "$JRE_IMAGE")" "$ROOT/stack/kafka/pom.xml" "$ROOT/stack/kafka/tools-log4j2.properties" \
    "$CI_DIR"/kafka/*)
  stale "$KAFKA_IMAGE" "$hash" || { log "$KAFKA_IMAGE: up to date"; return 0; }
  log "$KAFKA_IMAGE: the jars of stack/kafka/pom.xml"
  ctx=$(context kafka)
  maven_jars "$ROOT/stack/kafka/pom.xml" "$ctx/libs"
  cp "$ROOT/stack/kafka/tools-log4j2.properties" "$ctx/"
  docker_build "$KAFKA_IMAGE" "$ctx" "$hash"
  rm -rf "$ctx"
}

build_zipkin() {
  local hash ctx jars
  hash=$(hash_of "$(image_id "$JRE_IMAGE")" "$ROOT/stack/zipkin/pom.xml" "$CI_DIR/zipkin/Dockerfile")
  stale "$ZIPKIN_IMAGE" "$hash" || { log "$ZIPKIN_IMAGE: up to date"; return 0; }
  log "$ZIPKIN_IMAGE: the jar of stack/zipkin/pom.xml"
  ctx=$(context zipkin)
  maven_jars "$ROOT/stack/zipkin/pom.xml" "$ctx/jars"
  jars=("$ctx"/jars/zipkin-server-*-exec.jar)
  [[ -f ${jars[0]} ]] || die "no zipkin-server exec jar from stack/zipkin/pom.xml"
  mv "${jars[0]}" "$ctx/zipkin.jar"
  rm -rf "$ctx/jars"
  docker_build "$ZIPKIN_IMAGE" "$ctx" "$hash"
  rm -rf "$ctx"
}

build_postgres() {
  local hash
  hash=$(hash_of "$(image_id "$BASE_IMAGE")" "$CI_DIR"/postgres/*)
  stale "$POSTGRES_IMAGE" "$hash" || { log "$POSTGRES_IMAGE: up to date"; return 0; }
  log "$POSTGRES_IMAGE: Debian's postgresql"
  docker_build "$POSTGRES_IMAGE" "$(context postgres)" "$hash"
  rm -rf "$WORK/ctx-postgres"
}

# The host's Rust toolchain (rustup's, or where rustc lives), without its docs.
rust_toolchain_dir() {
  local dir
  for dir in "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$RUST_TOOLCHAIN_VERSION"*-x86_64-unknown-linux-gnu \
    "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/stable-x86_64-unknown-linux-gnu"; do
    if [[ -x $dir/bin/cargo && $("$dir/bin/rustc" --version) == "rustc $RUST_TOOLCHAIN_VERSION."* ]]; then
      readlink -f "$dir"
      return 0
    fi
  done
  return 1
}

build_rust() {
  local hash ctx tc version
  tc=$(rust_toolchain_dir) || die "no Rust $RUST_TOOLCHAIN_VERSION toolchain on the host (rustup toolchain)"
  version=$("$tc/bin/rustc" --version)
  hash=$(hash_of "$(image_id "$BASE_IMAGE")" "$CI_DIR/rust/Dockerfile" "$version" "$("$tc/bin/cargo" --version)")
  stale "$RUST_IMAGE" "$hash" || { log "$RUST_IMAGE: up to date"; return 0; }
  log "$RUST_IMAGE: C toolchain + the host's $version ($tc)"
  ctx=$(context rust)
  mkdir -p "$ctx/toolchain"
  # Hard links where the file system allows: the toolchain is some 600 MB.
  local part
  for part in bin lib libexec etc; do
    [[ -e $tc/$part ]] || continue
    cp -al "$tc/$part" "$ctx/toolchain/" 2>/dev/null || cp -a "$tc/$part" "$ctx/toolchain/"
  done
  docker_build "$RUST_IMAGE" "$ctx" "$hash"
  rm -rf "$ctx"
}

build_images() {
  # $1: which are needed ("infra" for kafka/zipkin/postgres only, "all" adds the Rust base).
  local start
  start=$SECONDS; build_base; log "base: $((SECONDS - start)) s"
  start=$SECONDS; build_jre; log "jre: $((SECONDS - start)) s"
  start=$SECONDS; build_kafka; log "kafka: $((SECONDS - start)) s"
  start=$SECONDS; build_zipkin; log "zipkin: $((SECONDS - start)) s"
  start=$SECONDS; build_postgres; log "postgres: $((SECONDS - start)) s"
  if [[ $1 == all ]]; then
    start=$SECONDS; build_rust; log "rust base: $((SECONDS - start)) s"
  fi
}

# ------------------------------------------------------------------ 3. compose

BROKERS=1
COMPOSE_FILE_CI=""

# docker-compose.yml + the CI override, rendered into one file, host ports dropped but
# for the services of $PUBLISH. Compose merges port lists, so an override cannot do it.
render_compose() {
  local files=(-f "$ROOT/docker-compose.yml")
  ((BROKERS == 3)) && files+=(-f "$ROOT/docker-compose.3-brokers.yml")
  files+=(-f "$CI_DIR/override.yml")
  ((BROKERS == 3)) && files+=(-f "$CI_DIR/override.3-brokers.yml")
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/compose-ci.XXXXXX")
  COMPOSE_FILE_CI=$tmp/docker-compose.ci.yml
  (cd "$ROOT" && "${COMPOSE[@]}" --project-directory "$ROOT" "${files[@]}" config) >"$tmp/merged.yml" \
    || die "docker-compose config failed"
  # Debian's docker-compose is Python with PyYAML; its interpreter has what this needs.
  PUBLISH="$PUBLISH" /usr/bin/python3 - "$tmp/merged.yml" "$COMPOSE_FILE_CI" <<'EOF'
import os, sys, yaml
with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f)
keep = set(os.environ["PUBLISH"].split())
for name, service in doc["services"].items():
    if not any(name == k or name.startswith(k + "-") for k in keep):
        service.pop("ports", None)
with open(sys.argv[2], "w") as f:
    yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
EOF
}

compose() { "${COMPOSE[@]}" -p "$PROJECT" --project-directory "$ROOT" -f "$COMPOSE_FILE_CI" "$@"; }

# State of a container: healthy, unhealthy, starting, or running/exited/... when it has
# no health check; crash-looping once restarted 3 times (restart: unless-stopped would
# otherwise keep it "starting" until the timeout).
container_state() {
  local state
  state=$("$DOCKER" inspect -f '{{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null) \
    || { echo gone; return; }
  if ((${state%% *} >= 3)) && [[ ${state#* } != healthy ]]; then echo crash-looping; else echo "${state#* }"; fi
}
container_name() { "$DOCKER" inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }

# Waits until every container of the project is healthy (or, without a health check,
# running). Fails at once on one that exited or is unhealthy, or after TIMEOUT.
wait_healthy() {
  local deadline=$((SECONDS + TIMEOUT)) ids id state pending bad last=""
  while :; do
    mapfile -t ids < <(compose ps -q)
    ((${#ids[@]})) || { log "no container of project $PROJECT runs"; return 1; }
    pending=() bad=()
    for id in "${ids[@]}"; do
      state=$(container_state "$id")
      case $state in
        healthy | running) ;;
        starting | created | restarting) pending+=("$(container_name "$id"):$state") ;;
        *) bad+=("$(container_name "$id"):$state") ;;
      esac
    done
    if ((${#bad[@]})); then log "not healthy: ${bad[*]}"; return 1; fi
    if ((${#pending[@]} == 0)); then log "all ${#ids[@]} containers healthy"; return 0; fi
    if ((SECONDS > deadline)); then log "still not healthy after $TIMEOUT s: ${pending[*]}"; return 1; fi
    [[ ${pending[*]} == "$last" ]] || log "waiting for: ${pending[*]}"
    last=${pending[*]}
    sleep 3
  done
}

RESULTS_PASSED=0
RESULTS_FAILED=0
SUMMARY_PRINTED=""

report() {
  local id state
  while read -r id; do
    [[ -n $id ]] || continue
    state=$(container_state "$id")
    if [[ $state == healthy || $state == running ]]; then
      RESULTS_PASSED=$((RESULTS_PASSED + 1))
      printf '  %-40s %s\n' "$(container_name "$id")" "$state" >&2
    else
      RESULTS_FAILED=$((RESULTS_FAILED + 1))
      printf '  %-40s %s   <- logs below\n' "$(container_name "$id")" "$state" >&2
    fi
  done < <(compose ps -q)
}

dump_unhealthy_logs() {
  local id state
  while read -r id; do
    [[ -n $id ]] || continue
    state=$(container_state "$id")
    [[ $state == healthy || $state == running ]] && continue
    log "---- $(container_name "$id") ($state): last 80 lines of its log"
    "$DOCKER" logs --tail 80 "$id" 2>&1 | sed 's/^/    /' >&2 || true
    "$DOCKER" inspect -f '{{if .State.Health}}{{range .State.Health.Log}}    health: exit {{.ExitCode}} {{.Output}}{{end}}{{end}}' "$id" >&2 || true
  done < <(compose ps -q)
}

# Checks beyond health: Kafka answers on the published host listener, and the gateway
# through which every request goes answers.
smoke_checks() {
  local services=" $* "
  if [[ $services == *" kafka "* ]]; then
    local kt=(compose exec -T kafka kafka-topics.sh --bootstrap-server localhost:9092)
    if [[ " $PUBLISH " == *" kafka "* ]] && command -v java >/dev/null; then
      # Through the published host listener (localhost:29092, advertised as such).
      log "kafka: a topic created from the host at localhost:29092 (stack/bin/kafka-topics.sh)"
      kt=("$ROOT/stack/bin/kafka-topics.sh" --bootstrap-server localhost:29092)
    fi
    "${kt[@]}" --create --if-not-exists --topic compose-ci.smoke --partitions 1 --replication-factor "$BROKERS" >&2 \
      || { log "kafka-topics.sh --create failed"; return 1; }
    log "kafka: topics, from inside the container"
    compose exec -T kafka kafka-topics.sh --bootstrap-server localhost:9092 --describe --topic compose-ci.smoke >&2 \
      || { log "kafka-topics.sh in the kafka container failed"; return 1; }
  fi
  if [[ $services == *" postgres "* ]]; then
    log "postgres: the databases its init script made"
    compose exec -T postgres psql -U postgres -Atc 'SELECT datname FROM pg_database ORDER BY 1' >&2 \
      || { log "psql in the postgres container failed"; return 1; }
  fi
  if [[ $services == *" zipkin "* ]]; then
    compose exec -T zipkin curl -fsS http://127.0.0.1:9411/health >&2 || { log "zipkin /health failed"; return 1; }
    echo >&2
  fi
  if [[ $services == *" gateway "* ]]; then
    compose exec -T gateway curl -fsS http://localhost:8080/health >&2 || { log "gateway /health failed"; return 1; }
    echo >&2
  fi
}

UP=""
KEEP_UP=""

cleanup() {
  local rc=$?
  set +e
  # The closing line a runner reads, also when a step before the health checks failed.
  ((rc == 0)) || [[ -n $SUMMARY_PRINTED ]] || echo "compose up: 0 passed, 1 failed"
  if [[ -n $UP ]]; then
    if ((rc != 0)); then
      log "failed: state of the containers"
      compose ps >&2
      dump_unhealthy_logs
    fi
    if [[ -n $KEEP_UP ]]; then
      log "left running (--keep-up): take it down with: tools/compose-ci.sh down"
    else
      log "docker compose down -v"
      compose down -v --remove-orphans >&2
    fi
  fi
  [[ -n $COMPOSE_FILE_CI ]] && [[ -z $KEEP_UP ]] && rm -rf "$(dirname "$COMPOSE_FILE_CI")"
  [[ -n $KEEP_UP ]] || stop_dockerd
  exit "$rc"
}

main() {
  local cmd=up services="" arg
  while (($#)); do
    arg=$1; shift
    case $arg in
      images | down | up) cmd=$arg ;;
      --services) services=${1:?--services needs a list}; shift ;;
      --brokers) BROKERS=${1:?--brokers needs 1 or 3}; shift ;;
      --keep-up) KEEP_UP=1 ;;
      -h | --help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument '$arg' (see --help)" ;;
    esac
  done
  case $BROKERS in 1 | 3) ;; *) die "--brokers must be 1 or 3" ;; esac
  trap cleanup EXIT
  ensure_docker

  if [[ $cmd == down ]]; then
    KEEP_UP=1 # leave dockerd alone
    render_compose
    compose down -v --remove-orphans
    # The dockerd an earlier --keep-up run of this script started goes too.
    if [[ -f $WORK/dockerd.pid ]]; then
      STARTED_DOCKERD=$(<"$WORK/dockerd.pid")
      KEEP_UP=""
    fi
    return
  fi

  # Which services: all but Kafka UI (left out by the override's profile), or those asked.
  render_compose
  local all
  all=$(compose config --services | tr '\n' ' ')
  if [[ -z $services ]]; then
    services=$(for s in $all; do [[ $s == kafka-ui ]] || echo "$s"; done | tr '\n' ' ')
  fi
  local needs_app=infra s
  for s in $services; do
    [[ " $all " == *" $s "* ]] || die "no service '$s' in the compose files (they have: $all)"
  done
  for s in $services; do
    case $s in kafka | kafka-[0-9] | zipkin | postgres) ;; *) needs_app=all ;; esac
  done
  build_images "$needs_app"
  [[ $cmd == images ]] && return 0

  if [[ $needs_app == all ]]; then
    local start=$SECONDS
    log "building $APP_IMAGE (the project's Dockerfile, release build of the workspace)"
    "${COMPOSE[@]}" -p "$PROJECT" --project-directory "$ROOT" -f "$COMPOSE_FILE_CI" build gateway >&2 \
      || die "building the project image failed"
    log "$APP_IMAGE: built in $((SECONDS - start)) s"
  fi

  log "docker compose up -d $services"
  UP=1
  # shellcheck disable=SC2086
  compose up -d --no-build $services >&2
  local ok=0
  wait_healthy || ok=1
  if ((ok == 0)); then
    # shellcheck disable=SC2086
    smoke_checks $services || ok=1
  fi
  log "containers:"
  report
  ((ok == 0 || RESULTS_FAILED > 0)) || RESULTS_FAILED=1 # a failed smoke check
  echo "compose up: $RESULTS_PASSED passed, $RESULTS_FAILED failed"
  SUMMARY_PRINTED=1
  return "$ok"
}

main "$@"
