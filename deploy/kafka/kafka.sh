#!/usr/bin/env bash
# Vigie: local single-node Apache Kafka 4.x (KRaft, broker+controller) on 127.0.0.1.
#   kafka.sh resolve | start | stop | status | reset
# Env: VIGIE_VAR (default <repo>/var), VIGIE_KAFKA_PORT (9092),
#      VIGIE_KAFKA_CONTROLLER_PORT (9093), VIGIE_PYTHON (optional, readiness fallback),
#      VIGIE_KAFKA_HEAP (default "-Xmx1g -Xms256m": a test run leaves thousands of partitions),
#      VIGIE_KAFKA_EXTRA_PROPERTIES (optional file appended to the rendered config: its keys override,
#        e.g. one more listener with SASL or TLS; the PLAINTEXT one on VIGIE_KAFKA_PORT stays for readiness),
#      VIGIE_KAFKA_SCRAM_FILE (optional file, one `--add-scram` argument a line such as
#        SCRAM-SHA-256=[name=vigie,password=...]: SCRAM users written when the storage is formatted).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"   # deploy/kafka
REPO="$(cd "$HERE/../.." && pwd)"
LIB="$HERE/lib"
STAMP="$LIB/.pom.sha256"
PORT="${VIGIE_KAFKA_PORT:-9092}"
CPORT="${VIGIE_KAFKA_CONTROLLER_PORT:-9093}"
DATA="${VIGIE_VAR:-$REPO/var}/kafka"
PIDFILE="$DATA/kafka.pid"
OUTLOG="$DATA/logs/kafka.out"        # JVM stdout/stderr
SRVLOG="$DATA/logs/server.log"       # log4j2 (see log4j2.properties)
PROPS="$DATA/server.properties"      # rendered from $HERE/server.properties

log() { echo "kafka.sh: $*" >&2; }

# --- resolve: copy the runtime classpath into lib/, once per pom.xml content ---
resolve() {
  local want; want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then return 0; fi
  log "resolving jars with Maven into $LIB"
  rm -rf "$LIB"
  local out; out="$(mktemp)"   # Maven's output is shown only on failure
  if ! mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIB" -DincludeScope=runtime </dev/null >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; log "Maven failed"; exit 1
  fi
  rm -f "$out"
  echo "$want" >"$STAMP"
}

# --- helpers ---
pid_alive() {   # our broker JVM, not a recycled pid
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
answers() {     # a metadata request succeeds
  port_open "$PORT" || return 1
  if command -v kcat >/dev/null; then
    kcat -L -b "127.0.0.1:$PORT" -m 3 >/dev/null 2>&1
  elif [[ -n "${VIGIE_PYTHON:-}" ]]; then
    "$VIGIE_PYTHON" - "$PORT" >/dev/null 2>&1 <<'PY'
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient
async def main():
    a = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000)
    await a.start(); await a.list_topics(); await a.close()
asyncio.run(main())
PY
  else
    true        # TCP only (weaker: the port may accept shortly before requests are served)
  fi
}

answers_kafka() {   # a real metadata answer (never a bare TCP accept) from whatever listens
  port_open "$PORT" || return 1
  command -v kcat >/dev/null || [[ -n "${VIGIE_PYTHON:-}" ]] || return 1
  answers
}

start() {
  if pid_alive && answers; then log "already running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT)"; return 0; fi
  if pid_alive; then log "pid $(cat "$PIDFILE") alive but not answering; stopping it first"; stop; fi
  if answers_kafka; then
    log "a Kafka broker not started by this checkout already answers on 127.0.0.1:$PORT; using it"
    return 0
  fi
  for p in "$PORT" "$CPORT"; do
    if port_open "$p"; then log "port $p already in use by another process"; exit 1; fi
  done
  resolve
  mkdir -p "$DATA/data" "$DATA/logs"
  # Render the config: data dir and ports.
  sed -e "s#^log\.dirs=.*#log.dirs=$DATA/data#" \
      -e "s#127\.0\.0\.1:9093#127.0.0.1:$CPORT#g" \
      -e "s#127\.0\.0\.1:9092#127.0.0.1:$PORT#g" "$HERE/server.properties" >"$PROPS"
  if [[ -n "${VIGIE_KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    { echo; echo "# from $VIGIE_KAFKA_EXTRA_PROPERTIES"; cat "$VIGIE_KAFKA_EXTRA_PROPERTIES"; } >>"$PROPS"
  fi
  local jvm=(java ${VIGIE_KAFKA_HEAP:--Xmx1g -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true
             -Dkafka.logs.dir="$DATA/logs" -Dlog4j2.configurationFile="$HERE/log4j2.properties"
             -cp "$LIB/*")
  # Format the storage once (meta.properties marks a formatted log dir).
  if [[ ! -f "$DATA/data/meta.properties" ]]; then
    # Cluster id as `kafka-storage random-uuid` makes it (base64url of 16 random bytes,
    # not starting with '-'), without paying for one more JVM start.
    local cid="-"
    while [[ "$cid" == -* ]]; do
      cid="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    log "formatting $DATA/data (cluster id $cid)"
    local scram=() line
    if [[ -n "${VIGIE_KAFKA_SCRAM_FILE:-}" ]]; then
      while IFS= read -r line; do [[ -n "$line" ]] && scram+=(--add-scram "$line"); done <"$VIGIE_KAFKA_SCRAM_FILE"
    fi
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cid" -c "$PROPS" "${scram[@]}" >>"$OUTLOG" 2>&1 ||
      { tail -n 40 "$OUTLOG" >&2; exit 1; }
  fi
  # Start detached (own session), so the caller's Ctrl-C does not reach it.
  setsid "${jvm[@]}" kafka.Kafka "$PROPS" >>"$OUTLOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local t0=$SECONDS
  until answers; do
    if ! pid_alive || (( SECONDS - t0 >= 60 )); then
      log "broker did not come up; last lines of $SRVLOG and $OUTLOG:"
      tail -n 40 "$SRVLOG" >&2 2>/dev/null || true; tail -n 40 "$OUTLOG" >&2
      stop; exit 1
    fi
    sleep 0.5
  done
  log "running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT, data $DATA, ready in $((SECONDS - t0)) s)"
}

stop() {
  if ! pid_alive; then rm -f "$PIDFILE"; log "not running"; return 0; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "no clean shutdown in 30 s, SIGKILL"; kill -KILL "$pid" || true; fi
  rm -f "$PIDFILE"; log "stopped"
}

status() {
  if pid_alive; then echo "running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT)"; return 0; fi
  echo "stopped"; return 3
}

reset() { stop; log "deleting $DATA"; rm -rf "$DATA"; }

case "${1:-}" in
  resolve) resolve ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) reset ;;
  *) echo "usage: $0 {resolve|start|stop|status|reset}" >&2; exit 2 ;;
esac
