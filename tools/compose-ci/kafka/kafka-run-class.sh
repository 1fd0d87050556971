#!/bin/bash
# The Kafka CLI from the image's jars: each /opt/kafka/bin/kafka-*.sh is a link to this
# file and its name picks the tool; kafka-run-class.sh CLASS [ARGS...] runs any class.
set -euo pipefail
case $(basename "$0") in
  kafka-broker-api-versions.sh) class=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
  kafka-topics.sh) class=org.apache.kafka.tools.TopicCommand ;;
  kafka-consumer-groups.sh) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-console-consumer.sh) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  kafka-console-producer.sh) class=org.apache.kafka.tools.ConsoleProducer ;;
  kafka-metadata-quorum.sh) class=org.apache.kafka.tools.MetadataQuorumCommand ;;
  kafka-storage.sh) class=kafka.tools.StorageTool ;;
  kafka-run-class.sh) class=${1:?usage: kafka-run-class.sh CLASS [ARGS...]}; shift ;;
  *) echo "unknown tool $(basename "$0")" >&2; exit 2 ;;
esac
# A short-lived tool starts faster without the optimising JIT.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties \
  -cp '/opt/kafka/libs/*' "$class" "$@"
