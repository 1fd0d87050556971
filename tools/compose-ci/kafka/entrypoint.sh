#!/bin/bash
# Starts one Kafka broker (tools/compose-ci stand-in for apache/kafka). Like that image:
# every KAFKA_* variable (but the JVM ones) is a line of server.properties, its name
# lower-cased with "___" → "-", "__" → "_", "_" → "."; CLUSTER_ID formats log.dirs once.
set -euo pipefail
conf=/opt/kafka/config/server.properties
: >"$conf"
for var in $(compgen -e); do
  case $var in
    KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS | KAFKA_LOG4J_OPTS | KAFKA_GC_LOG_OPTS \
      | KAFKA_JMX_OPTS | KAFKA_DEBUG | KAFKA_VERSION | KAFKA_HOME) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${var#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/$'\x01'}
  key=${key//_/.}
  key=${key//$'\x01'/_}
  printf '%s=%s\n' "$key" "${!var}" >>"$conf"
done
[[ -s $conf ]] || { echo "no KAFKA_* settings in the environment" >&2; exit 1; }
echo "server.properties:" >&2
sed 's/^/  /' "$conf" >&2

log_dirs=$(sed -n 's/^log\.dirs=//p' "$conf")
if [[ -n ${CLUSTER_ID:-} && ! -f ${log_dirs%%,*}/meta.properties ]]; then
  KAFKA_HEAP_OPTS=-Xmx256m kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$conf"
fi
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20} \
  -Djava.awt.headless=true ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' kafka.Kafka "$conf"
