#!/usr/bin/env bash
# Vigie: entrypoint of the SASL_SSL Kafka broker of docker-compose.sasl.yml (image apache/kafka 4.x).
#
# Renders the broker's server.properties from the environment (KAFKA_NODE_ID, KAFKA_ADVERTISED_HOST,
# CLUSTER_ID) and the secret files under /run/secrets, formats the storage once with the SCRAM users
# (kafka-storage format --add-scram: `broker` for the broker's own connections, `vigie` for the
# services), then runs the broker. Clients connect with SASL_SSL (SCRAM-SHA-512) on 9092; the KRaft
# controller listener (9093) stays on the compose network. BROKER_PORT, CONTROLLER_PORT and LISTEN_HOST
# change the ports and the address listened on (tests run it on 127.0.0.1). No secret is in the compose
# file or in the image: the rendered file is written in the container (mode 600), read by the broker only.
#
#   sasl-ssl-broker.sh            render, format if needed, exec the broker
#   sasl-ssl-broker.sh render F   only write the properties to F (used by tests/test_deploy.py)
# It also writes /tmp/vigie-kafka/client.properties (mode 600) for the healthcheck's kafka-topics.sh.
# Secret files (made by deploy/secrets/make-secrets.sh): kafka-broker-keystore.pem (key + certificate
# chain, PEM), kafka-ca.pem, kafka-broker-password, kafka-vigie-password.
set -euo pipefail

SECRETS="${VIGIE_SECRETS_DIR:-/run/secrets}"
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
DATA="${KAFKA_LOG_DIRS:-/var/lib/kafka/data}"
HOST="${KAFKA_ADVERTISED_HOST:-kafka}"
NODE="${KAFKA_NODE_ID:-1}"
PORT="${BROKER_PORT:-9092}"             # clients (SASL_SSL)
CPORT="${CONTROLLER_PORT:-9093}" # KRaft controller (compose network only)

secret() {  # the content of a secret file, without its trailing newline; fails naming the file
  local file="$SECRETS/$1"
  [[ -r "$file" ]] || { echo "sasl-ssl-broker.sh: cannot read secret file $file" >&2; exit 1; }
  local value; value="$(cat "$file")"
  [[ -n "$value" ]] || { echo "sasl-ssl-broker.sh: secret file $file is empty" >&2; exit 1; }
  [[ "$value" =~ ^[A-Za-z0-9._~+-]+$ ]] || { echo "sasl-ssl-broker.sh: $file: use letters, digits and ._~+- only" >&2; exit 1; }
  printf '%s' "$value"
}

render() {  # server.properties to $1
  umask 077
  cat >"$1" <<PROPS
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS:-$NODE@$HOST:$CPORT}
controller.listener.names=CONTROLLER
listeners=SASL_SSL://${LISTEN_HOST:-}:$PORT,CONTROLLER://${LISTEN_HOST:-}:$CPORT
advertised.listeners=SASL_SSL://$HOST:$PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret kafka-broker-password)";
ssl.keystore.type=PEM
ssl.keystore.location=$SECRETS/kafka-broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/kafka-ca.pem
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=${KAFKA_DEFAULT_REPLICATION_FACTOR:-1}
min.insync.replicas=${KAFKA_MIN_INSYNC_REPLICAS:-1}
offsets.topic.replication.factor=${KAFKA_DEFAULT_REPLICATION_FACTOR:-1}
transaction.state.log.replication.factor=${KAFKA_DEFAULT_REPLICATION_FACTOR:-1}
transaction.state.log.min.isr=${KAFKA_MIN_INSYNC_REPLICAS:-1}
group.initial.rebalance.delay.ms=0
log.retention.hours=696
log.roll.hours=24
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
PROPS
}

client() {  # properties of a client logging in as `broker` (the healthcheck's kafka-topics.sh) to $1
  umask 077
  cat >"$1" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret kafka-broker-password)";
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/kafka-ca.pem
PROPS
}

if [[ "${1:-}" == "render" ]]; then render "$2"; exit 0; fi
: "${CLUSTER_ID:?set CLUSTER_ID (kafka-storage random-uuid)}"
RUN="${VIGIE_BROKER_RUN_DIR:-/tmp/vigie-kafka}"
mkdir -p -m 700 "$RUN"
PROPS="$RUN/server.properties"
render "$PROPS"
client "$RUN/client.properties"
if [[ ! -f "$DATA/meta.properties" ]]; then
  "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$CLUSTER_ID" -c "$PROPS" \
    --add-scram "SCRAM-SHA-512=[name=broker,password=$(secret kafka-broker-password)]" \
    --add-scram "SCRAM-SHA-512=[name=vigie,password=$(secret kafka-vigie-password)]" >/dev/null
fi
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$PROPS"
