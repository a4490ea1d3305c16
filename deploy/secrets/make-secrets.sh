#!/usr/bin/env bash
# Vigie: the secret files of docker-compose.sasl.yml, made once with openssl into deploy/secrets/
# (or the folder given): a private CA, the broker's certificate (host names kafka and localhost,
# IP 127.0.0.1) signed by it, and random passwords for the SCRAM users `broker` and `vigie`.
#   deploy/secrets/make-secrets.sh [FOLDER]
# Files: kafka-ca.pem (give it to clients), kafka-broker-keystore.pem (the broker's key and
# certificate chain), kafka-broker-password, kafka-vigie-password; the CA's key is kafka-ca.key (keep
# it elsewhere once the certificate is made). Existing files are kept: delete them to make new ones.
# Git ignores them (.gitignore): never commit them.
set -euo pipefail
out="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
mkdir -p "$out"
cd "$out"
umask 077
hosts="${VIGIE_BROKER_HOSTS:-DNS:kafka,DNS:localhost,IP:127.0.0.1}"
for user in broker vigie; do
  [[ -s "kafka-$user-password" ]] || openssl rand -hex 24 >"kafka-$user-password"
done
if [[ ! -s kafka-broker-keystore.pem ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -keyout kafka-ca.key -out kafka-ca.pem -days 825 \
    -subj "/CN=vigie-kafka-ca" 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -keyout broker.key -out broker.csr -subj "/CN=kafka" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$hosts" >broker.ext
  openssl x509 -req -in broker.csr -CA kafka-ca.pem -CAkey kafka-ca.key -CAcreateserial -days 825 \
    -extfile broker.ext -out broker.pem 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.p8
  cat broker.p8 broker.pem kafka-ca.pem >kafka-broker-keystore.pem
  rm -f broker.key broker.p8 broker.csr broker.ext broker.pem kafka-ca.srl
fi
# docker compose bind-mounts file secrets with these modes, and the containers do not run as root:
# the files are readable inside them, the folder (700) keeps other users of this host out.
chmod 700 .
chmod 644 kafka-ca.pem kafka-broker-keystore.pem kafka-broker-password kafka-vigie-password
echo "secrets in $out: kafka-ca.pem kafka-broker-keystore.pem kafka-broker-password kafka-vigie-password"
