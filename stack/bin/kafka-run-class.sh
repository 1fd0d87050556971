#!/usr/bin/env bash
# The Kafka CLI that users know from `bin/*.sh`, run from the stack's Maven-resolved jars.
# Each stack/bin/kafka-*.sh is a link to this file; the name it was called by picks the tool:
#   stack/bin/kafka-topics.sh --bootstrap-server 127.0.0.1:9092 --list
#   stack/bin/kafka-consumer-groups.sh --bootstrap-server 127.0.0.1:9092 --describe --group order-service
#   stack/bin/kafka-console-consumer.sh --bootstrap-server 127.0.0.1:9092 --topic user.signed-up \
#       --from-beginning --property print.headers=true --property print.key=true
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case $(basename "$0") in
  kafka-topics.sh) class=org.apache.kafka.tools.TopicCommand ;;
  kafka-consumer-groups.sh) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-console-consumer.sh) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  kafka-console-producer.sh) class=org.apache.kafka.tools.ConsoleProducer ;;
  kafka-metadata-quorum.sh) class=org.apache.kafka.tools.MetadataQuorumCommand ;;
  kafka-run-class.sh) class=${1:?usage: kafka-run-class.sh CLASS [ARGS...]}; shift ;;
  *) echo "unknown tool $(basename "$0")" >&2; exit 2 ;;
esac
exec "$here/../stack.sh" cli "$class" "$@"
