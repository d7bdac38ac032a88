#!/usr/bin/env bash
# tests/clickhouse/legacy-server.sh start|stop|kill|restart|status|clean NAME HTTP_PORT
# Runs a private instance of Debian's clickhouse-server (18.16) for the tests: its own config, data
# directory and ports under ${EVALFORGE_CH_STATE:-/tmp/evalforge-clickhouse}/NAME, so several can
# run side by side (the shared test server and the fault test's own instance). `start` returns once
# the HTTP interface answers `SELECT 1`; it prints the base URL. `stop` sends SIGTERM to the pid it
# started and waits for it to exit. Data survives stop/start (the fault test relies on that).
set -euo pipefail
cmd="${1:?usage: legacy-server.sh start|stop|restart|status NAME HTTP_PORT}"
name="${2:-legacy}"
http_port="${3:-18123}"
tcp_port=$((http_port + 1000))
state="${EVALFORGE_CH_STATE:-/tmp/evalforge-clickhouse}/$name"
server_bin="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"
pidfile="$state/server.pid"

write_config() {
  mkdir -p "$state/data" "$state/tmp" "$state/log" "$state/user_files"
  cat >"$state/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$state/log/server.log</log><errorlog>$state/log/error.log</errorlog><size>10M</size><count>2</count></logger>
    <http_port>$http_port</http_port>
    <tcp_port>$tcp_port</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$state/data/</path>
    <tmp_path>$state/tmp/</tmp_path>
    <user_files_path>$state/user_files/</user_files_path>
    <users_config>$state/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
  cat >"$state/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage><max_threads>2</max_threads></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
url() { echo "http://127.0.0.1:$http_port"; }

start() {
  if running; then url; return 0; fi
  [[ -x "$server_bin" ]] || { echo "legacy-server: clickhouse-server not installed (scripts/setup installs it)" >&2; exit 1; }
  write_config
  # Its own process group, so stopping it never touches anything else.
  setsid "$server_bin" --config-file="$state/config.xml" >"$state/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 150); do
    if curl -sf "$(url)/?query=SELECT%201" >/dev/null 2>&1; then url; return 0; fi
    running || { echo "legacy-server: server exited; see $state/log" >&2; tail -20 "$state/log/error.log" >&2 2>/dev/null || true; exit 1; }
    sleep 0.2
  done
  echo "legacy-server: no answer on port $http_port after 30 s; see $state/log" >&2
  exit 1
}

stop() {
  running || { rm -f "$pidfile"; return 0; }
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# Simulated crash: SIGKILL, no graceful shutdown (the fault test; also the fast way to stop).
crash() {
  running || { rm -f "$pidfile"; return 0; }
  local pid; pid="$(cat "$pidfile")"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  kill) crash ;;
  restart) stop; start ;;
  status) if running; then echo "running $(url)"; else echo "stopped"; exit 1; fi ;;
  clean) crash; rm -rf "$state" ;;
  *) echo "usage: legacy-server.sh start|stop|restart|status|clean NAME HTTP_PORT" >&2; exit 2 ;;
esac
