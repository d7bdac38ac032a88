#!/usr/bin/env bash
# tests/clickhouse/chdb-server.sh start|stop HTTP_PORT: the chdb HTTP harness (current ClickHouse
# engine) in the background; `start` prints its URL once it answers.
set -euo pipefail
cmd="${1:?usage: chdb-server.sh start|stop HTTP_PORT}"
port="${2:-18124}"
state="${EVALFORGE_CH_STATE:-/tmp/evalforge-clickhouse}/chdb-$port"
pidfile="$state/harness.pid"
here="$(cd "$(dirname "$0")" && pwd)"
running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
case "$cmd" in
  start)
    if ! running; then
      rm -rf "$state"; mkdir -p "$state"
      setsid python3 "$here/chdb_http.py" --port "$port" --path "$state/db" >"$state/harness.log" 2>&1 </dev/null &
      echo $! >"$pidfile"
    fi
    for _ in $(seq 1 300); do
      if curl -sf "http://127.0.0.1:$port/?query=SELECT%201" >/dev/null 2>&1; then echo "http://127.0.0.1:$port"; exit 0; fi
      running || { echo "chdb-server: harness exited:" >&2; tail -20 "$state/harness.log" >&2; exit 1; }
      sleep 0.2
    done
    echo "chdb-server: no answer on port $port after 60 s" >&2; exit 1 ;;
  stop)
    if running; then
      pid="$(cat "$pidfile")"; kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" ;;
  *) echo "usage: chdb-server.sh start|stop HTTP_PORT" >&2; exit 2 ;;
esac
