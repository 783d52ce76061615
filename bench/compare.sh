#!/usr/bin/env bash
# The whole-proxy benchmark: pgbench through PgProxy against direct PostgreSQL and
# PgBouncer (session mode), alternating targets round by round so that drift on a
# shared machine hits all of them alike. Prints medians, ratios to direct, and each
# proxy's own CPU time per transaction (from /proc/PID/stat), which is steadier than
# throughput on a busy machine. Also: new connection per transaction (-C), bulk
# streaming (COPY TO STDOUT, a large SELECT), idle-session memory, select-only with the
# tableau_hll plugin configured (against plain pass-through), and select-only over TLS
# (TLS on both legs, and on the upstream leg only, against PgBouncer configured the same way).
#
#   bench/compare.sh                    # 3 rounds of 10 s per cell
#   ROUNDS=5 DURATION=20 bench/compare.sh
#   WARMUP=3                            # s per target and mode before round 1, not recorded
#   PERF_STAT=1                         # also perf stat each proxy per cell: CPU, switches, system calls per tx
#   METRICS=1                           # also metrics-on rows: a second PgProxy, the plain instance with the metrics
#                                       # endpoint on and scraped every second; its cells fill the icpt columns of
#                                       # those rows, so icpt/pgp is the endpoint's cost (the issue asks >= 0.97)
#   FEATURES=1                          # also the cost rows of rules, query statistics and the query log, each against
#                                       # an instance with everything off (stats.queries false, no rules, no log): its
#                                       # cells fill the pgproxy column of those rows, the feature's the icpt columns
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10}"
clients="${CLIENTS:-16}"
scale="${SCALE:-10}"
idle_sessions="${IDLE_SESSIONS:-1000}"
say() { printf 'bench: %s\n' "$*" >&2; }
# Every process started below inherits this: 1,000 idle sessions need more descriptors than the usual 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) >= 4096 )) || say "open-file limit $(ulimit -n): the idle-session row may fail"

# --- prerequisites, from Debian packages when missing.
need=()
[[ -n "$(newest_pg_bin)" ]] || need+=(postgresql)
[[ -f /usr/include/pg_query/pg_query.proto ]] || need+=(libpg-query-dev)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
if (( ${#need[@]} > 0 )); then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        say "missing: ${need[*]} (sudo apt-get install ${need[*]})"
        exit 1
    fi
fi
pg_bin="$(newest_pg_bin)"
pgbench="$pg_bin/pgbench"
psql="$pg_bin/psql"
# The server has TLS for the TLS row; every other row stays plain text, as before it had.
export PGSSLMODE=disable

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || ruby -e 'require "socket"; s=TCPServer.new("127.0.0.1",0); puts s.addr[1]' 2>/dev/null \
    || echo $(( 20000 + RANDOM % 20000 )); }

work="$(mktemp -d /tmp/pgproxy-bench.XXXXXX)"
chmod 755 "$work"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work"
pids=()
cleanup() {
    for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pg_port="$(free_port)"; bouncer_port="$(free_port)"; proxy_port="$(free_port)"; intercepted_port="$(free_port)"; tls_port="$(free_port)"; tableau_port="$(free_port)"
upstream_tls_port="$(free_port)"; bouncer_tls_port="$(free_port)"; bouncer_upstream_tls_port="$(free_port)"
say "PostgreSQL on $pg_port, PgBouncer on $bouncer_port, PgProxy on $proxy_port (TLS: $tls_port)"
as_postgres "$pg_bin/initdb" -D "$work/data" -A trust -U postgres --encoding=UTF8 --locale=C >/dev/null
# One self-signed certificate serves PostgreSQL and PgProxy's TLS instance.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/server.key" -out "$work/server.crt" >/dev/null 2>&1
chmod 600 "$work/server.key"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work/server.key" "$work/server.crt"
# PgProxy's copy of the key, owned by the user PgProxy runs as: it refuses, as PostgreSQL does, a key another user owns.
cp "$work/server.key" "$work/proxy.key" && chmod 600 "$work/proxy.key" && chown "$(id -u)" "$work/proxy.key"
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work -c max_connections=1200 -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c ssl=on -c ssl_cert_file=$work/server.crt -c ssl_key_file=$work/server.key" start >/dev/null
"$pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

# PgBouncer three times, configured as the PgProxy instance it is compared with: plain text, TLS to the server
# only (server_tls_sslmode = require), and TLS on both legs (client_tls_sslmode too).
bouncer_ini() {
    local name="$1" port="$2" tls="$3"
    cat >"$work/$name.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/users.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 1100
logfile = $work/$name.log
pidfile = $work/$name.pid
$tls
INI
    [[ "$(id -u)" -eq 0 ]] && chown postgres "$work/$name.ini"
    return 0
}
bouncer_ini pgbouncer "$bouncer_port" "server_tls_sslmode = disable"
bouncer_ini pgbouncer-upstream-tls "$bouncer_upstream_tls_port" "server_tls_sslmode = require"
bouncer_ini pgbouncer-tls "$bouncer_tls_port" "server_tls_sslmode = require
client_tls_sslmode = require
client_tls_cert_file = $work/server.crt
client_tls_key_file = $work/server.key"
echo '"postgres" ""' >"$work/users.txt"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work/users.txt"
for name in pgbouncer pgbouncer-upstream-tls pgbouncer-tls; do
    as_postgres pgbouncer -d "$work/$name.ini" >/dev/null 2>&1
done

# Three instances of one process: plain pass-through, the same with a query interceptor that changes nothing
# (a seed-style plugin compiled at start-up), so the table shows what configuring interception costs, and
# pass-through with TLS on both legs for the TLS row. The plain ones do not try TLS upstream (as PgBouncer here).
mkdir -p "$work/plugins"
cat >"$work/plugins/passthrough.cs" <<'CS'
public static class Passthrough
{
    public static string RewriteQuery(string query) => query;
}
CS
cat >"$work/pgproxy.yml" <<YAML
plugins: [passthrough, tableau_hll]
settings:
  log-level: warning
  plugin-dir: plugins
instances:
  - listen: { name: proxy, host: 127.0.0.1, port: $proxy_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
  - listen: { name: tls, host: 127.0.0.1, port: $tls_port, tls: { mode: require, cert-file: $work/server.crt, key-file: $work/proxy.key } }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: require } }
  - listen: { name: upstream-tls, host: 127.0.0.1, port: $upstream_tls_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: require } }
  - listen: { name: intercepted, host: 127.0.0.1, port: $intercepted_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
    intercept:
      commands:
        queries:
          - { plugin: passthrough, function: rewrite_query }
  - listen: { name: tableau, host: 127.0.0.1, port: $tableau_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
    intercept:
      commands:
        queries:
          - { plugin: tableau_hll, function: rewrite_query }
YAML
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
pids+=($!)
proxy_pid=$!

wait_port() { for _ in $(seq 1 100); do "$psql" -h 127.0.0.1 -p "$1" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# METRICS=1: a process of its own, so the pgproxy column keeps nothing listening to its instruments ("everything
# off"), with the same plain instance and the metrics endpoint on, scraped every second for the whole run as
# Prometheus would be. The scraper writes its counts after each scrape; they are printed with the table.
metrics_enabled="${METRICS:-0}"
if [[ "$metrics_enabled" == 1 ]]; then
    metrics_proxy_port="$(free_port)"; metrics_port="$(free_port)"
    cat >"$work/pgproxy-metrics.yml" <<YAML
settings:
  log-level: warning
metrics:
  listen: { host: 127.0.0.1, port: $metrics_port }
instances:
  - listen: { name: proxy, host: 127.0.0.1, port: $metrics_proxy_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
YAML
    dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy-metrics.yml" >"$work/pgproxy-metrics.log" 2>&1 &
    pids+=($!)
    metrics_proxy_pid=$!
    wait_port "$metrics_proxy_port" || { say "PgProxy with metrics did not start"; cat "$work/pgproxy-metrics.log" >&2; exit 1; }
    (
        ok=0 failed=0
        while true; do
            if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$metrics_port/metrics"; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
            echo "$ok $failed" >"$work/scrapes.txt"
            sleep 1
        done
    ) &
    pids+=($!)
    say "PgProxy with the metrics endpoint on $metrics_proxy_port, scraped every second at http://127.0.0.1:$metrics_port/metrics"
fi
# FEATURES=1: two processes with query statistics off. One holds an instance with everything off, one with 20 query
# rules that match none of pgbench's queries, and one with a rule that rewrites every pgbench query; the other has
# the query log on (json, every statement). The main process keeps the defaults, so it is the statistics-on side.
features_enabled="${FEATURES:-0}"
if [[ "$features_enabled" == 1 ]]; then
    off_port="$(free_port)"; rules20_port="$(free_port)"; rewrite_port="$(free_port)"; querylog_port="$(free_port)"; masked_port="$(free_port)"
    {
        echo "stats: { queries: false }"
        echo "settings: { log-level: warning }"
        echo "instances:"
        echo "  - listen: { name: off, host: 127.0.0.1, port: $off_port }"
        echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
        echo "  - listen: { name: rules-20, host: 127.0.0.1, port: $rules20_port }"
        echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
        echo "    rules:"
        for n in $(seq 1 20); do
            echo "      - { name: no-match-$n, match: { query: 'FROM\\s+orders_$n\\b' }, refuse: {} }"
        done
        echo "  - listen: { name: rules-rewrite, host: 127.0.0.1, port: $rewrite_port }"
        echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
        echo "    rules:"
        echo "      - { name: rewrite-all, match: { query: 'SELECT abalance' }, rewrite: 'SELECT /* rewritten */ abalance' }"
        echo "  - listen: { name: masked, host: 127.0.0.1, port: $masked_port }"
        echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
        echo "    masks:"
        echo "      - { name: bulk-a, columns: [public.bulk.a], with: { keep-last: 4 } }"
    } >"$work/pgproxy-features.yml"
    cat >"$work/pgproxy-querylog.yml" <<YAML
stats: { queries: false }
settings: { log-level: warning }
query-log: { file: $work/queries.log, format: json }
instances:
  - listen: { name: query-log, host: 127.0.0.1, port: $querylog_port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
YAML
    dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy-features.yml" >"$work/pgproxy-features.log" 2>&1 &
    pids+=($!)
    features_pid=$!
    dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy-querylog.yml" >"$work/pgproxy-querylog.log" 2>&1 &
    pids+=($!)
    querylog_pid=$!
    for port in "$off_port" "$rules20_port" "$rewrite_port" "$masked_port"; do
        wait_port "$port" || { say "PgProxy's feature instances did not start"; cat "$work/pgproxy-features.log" >&2; exit 1; }
    done
    wait_port "$querylog_port" || { say "PgProxy with the query log did not start"; cat "$work/pgproxy-querylog.log" >&2; exit 1; }
    say "PgProxy feature instances: everything off on $off_port, 20 rules on $rules20_port, a rewrite on $rewrite_port, query log on $querylog_port"
fi
wait_port "$bouncer_port" || { say "PgBouncer did not start"; cat "$work/pgbouncer.log" >&2; exit 1; }
wait_port "$proxy_port" || { say "PgProxy did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
wait_port "$intercepted_port" || { say "PgProxy's intercepted instance did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
wait_port "$tableau_port" || { say "PgProxy's tableau_hll instance did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
PGSSLMODE=require wait_port "$tls_port" || { say "PgProxy's TLS instance did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
wait_port "$upstream_tls_port" || { say "PgProxy's upstream-TLS instance did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
wait_port "$bouncer_upstream_tls_port" || { say "PgBouncer (upstream TLS) did not start"; cat "$work/pgbouncer-upstream-tls.log" >&2; exit 1; }
PGSSLMODE=require wait_port "$bouncer_tls_port" || { say "PgBouncer (TLS) did not start"; cat "$work/pgbouncer-tls.log" >&2; exit 1; }
bouncer_pid="$(cat "$work/pgbouncer.pid")"
bouncer_upstream_tls_pid="$(cat "$work/pgbouncer-upstream-tls.pid")"
bouncer_tls_pid="$(cat "$work/pgbouncer-tls.pid")"
pids+=("$bouncer_pid" "$bouncer_upstream_tls_pid" "$bouncer_tls_pid")

declare -A port_of=([direct]=$pg_port [pgbouncer]=$bouncer_port [pgproxy]=$proxy_port [intercepted]=$intercepted_port [pgproxy-tls]=$tls_port [tableau]=$tableau_port
    [pgproxy-upstream-tls]=$upstream_tls_port [pgbouncer-tls]=$bouncer_tls_port [pgbouncer-upstream-tls]=$bouncer_upstream_tls_port)
declare -A pid_of=([pgbouncer]=$bouncer_pid [pgproxy]=$proxy_pid [intercepted]=$proxy_pid [pgproxy-tls]=$proxy_pid [tableau]=$proxy_pid
    [pgproxy-upstream-tls]=$proxy_pid [pgbouncer-tls]=$bouncer_tls_pid [pgbouncer-upstream-tls]=$bouncer_upstream_tls_pid)
# The TLS instance's cells fill the pgproxy column of their own row; the tableau_hll instance's fill the icpt columns
# of its rows, so icpt/pgp is what configuring the plugin costs.
declare -A record_as=([pgproxy-tls]=pgproxy [tableau]=intercepted [pgproxy-upstream-tls]=pgproxy [pgbouncer-tls]=pgbouncer [pgbouncer-upstream-tls]=pgbouncer)
# The metrics-on process fills the icpt columns of its rows, so icpt/pgp is metrics on against everything off.
metrics_targets=()
if [[ "$metrics_enabled" == 1 ]]; then
    port_of[pgproxy-metrics]=$metrics_proxy_port
    pid_of[pgproxy-metrics]=$metrics_proxy_pid
    record_as[pgproxy-metrics]=intercepted
    metrics_targets=(pgproxy-metrics)
fi
feature_targets=()
if [[ "$features_enabled" == 1 ]]; then
    port_of[masked]=$masked_port
    port_of[features-off]=$off_port; port_of[rules-20]=$rules20_port; port_of[rules-rewrite]=$rewrite_port; port_of[query-log]=$querylog_port
    pid_of[features-off]=$features_pid; pid_of[rules-20]=$features_pid; pid_of[rules-rewrite]=$features_pid; pid_of[query-log]=$querylog_pid
    # The feature fills the icpt columns; the main process (statistics on, the default) is the icpt of stats-on rows.
    record_as[masked]=intercepted
    record_as[features-off]=pgproxy; record_as[rules-20]=intercepted; record_as[rules-rewrite]=intercepted; record_as[query-log]=intercepted
    record_as[stats-on]=intercepted; port_of[stats-on]=$proxy_port; pid_of[stats-on]=$proxy_pid
    feature_targets=(features-off rules-20 rules-rewrite query-log)
fi
ticks_per_second="$(getconf CLK_TCK)"
cpu_ticks() { [[ -n "${1:-}" ]] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

results="$work/results.txt"
: >"$results"
# One cell: pgbench against a target; records tps and the target proxy's CPU µs per transaction.
perf_results="$work/perf.txt"
: >"$perf_results"
perf_events="task-clock,context-switches,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait"
run_cell() {
    local label="$1" target="$2"; shift 2
    local before after out tps tx cpu_us="" perf_pid=""
    before="$(cpu_ticks "${pid_of[$target]:-}")"
    # PERF_STAT=1: perf stat on the proxy for the cell's middle (task-clock, switches, system calls), per transaction.
    if [[ "${PERF_STAT:-0}" == 1 && -n "${pid_of[$target]:-}" ]]; then
        perf stat -x, -e "$perf_events" -o "$work/perf-cell.txt" -p "${pid_of[$target]}" -- sleep "$duration" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    out="$("$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -j 2 -T "$duration" "$@" postgres 2>&1)" || { say "pgbench failed: $out"; return 1; }
    after="$(cpu_ticks "${pid_of[$target]:-}")"
    if [[ -n "$perf_pid" ]]; then
        wait "$perf_pid" || true
        local tps_now; tps_now="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)"
        # perf counted over the cell's duration; transactions over the same time are tps × duration.
        awk -F, -v l="$label" -v t="${record_as[$target]:-$target}" -v tx="$(awk -v r="$tps_now" -v d="$duration" 'BEGIN {print r * d}')" '
            $3 ~ /task-clock/ {cpu = $1} $3 ~ /context-switches/ {cs = $1} $3 ~ /recvfrom/ {rf = $1} $3 ~ /sendto/ {st = $1}
            $3 ~ /sys_enter_read$/ {rd = $1} $3 ~ /sys_enter_write$/ {wr = $1} $3 ~ /epoll_wait/ {ep = $1}
            END { if (tx > 0) printf "%s %s %.1f %.2f %.2f %.2f %.2f %.2f %.2f\n", l, t, cpu * 1000 / tx, cs / tx, rf / tx, st / tx, rd / tx, wr / tx, ep / tx }' \
            "$work/perf-cell.txt" >>"$perf_results"
    fi
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)"
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    if [[ -n "${pid_of[$target]:-}" && "$tx" -gt 0 ]]; then
        cpu_us="$(awk -v d=$((after - before)) -v hz="$ticks_per_second" -v tx="$tx" 'BEGIN {printf "%.1f", d / hz * 1e6 / tx}')"
    fi
    echo "$label ${record_as[$target]:-$target} $tps ${cpu_us:-}" >>"$results"
    say "$label $target: $tps tps${cpu_us:+, $cpu_us µs CPU/tx}"
}

# Warm-up, not recorded: PgProxy's code is compiled just in time and reaches its optimized tier only after a few
# thousand calls; that compilation would otherwise count in the first round's CPU per transaction. A proxy in
# service is always past it. Every target gets the same, PgBouncer and direct PostgreSQL included.
say "warm-up (${WARMUP:-3} s per target and mode, not recorded)"
for mode in simple extended prepared; do
    for target in direct pgbouncer pgproxy intercepted tableau "${metrics_targets[@]+"${metrics_targets[@]}"}" "${feature_targets[@]+"${feature_targets[@]}"}"; do
        "$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -j 2 -T "${WARMUP:-3}" -S -M "$mode" -c "$clients" postgres >/dev/null 2>&1 \
            || { say "warm-up against $target failed"; exit 1; }
    done
done
for target in pgproxy-tls pgbouncer-tls; do
    PGSSLMODE=require "$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -j 2 -T "${WARMUP:-3}" -S -M extended -c "$clients" postgres >/dev/null 2>&1 \
        || { say "warm-up against $target failed"; exit 1; }
done
for target in pgproxy-upstream-tls pgbouncer-upstream-tls; do
    "$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -j 2 -T "${WARMUP:-3}" -S -M extended -c "$clients" postgres >/dev/null 2>&1 \
        || { say "warm-up against $target failed"; exit 1; }
done

for round in $(seq 1 "$rounds"); do
    say "round $round of $rounds"
    for mode in simple extended prepared; do
        for target in direct pgbouncer pgproxy intercepted; do
            run_cell "select-only/$mode" "$target" -S -M "$mode" -c "$clients"
        done
    done
    for target in direct pgbouncer pgproxy; do
        run_cell "connect-per-tx" "$target" -S -C -c 4
    done
    # The metrics endpoint on and scraped every second, against PgProxy with nothing listening to its instruments.
    if [[ "$metrics_enabled" == 1 ]]; then
        for mode in simple extended prepared; do
            for target in direct pgproxy pgproxy-metrics; do
                run_cell "metrics-on/$mode" "$target" -S -M "$mode" -c "$clients"
            done
        done
    fi
    # Each feature against everything off, in the same process where the feature is per instance.
    if [[ "$features_enabled" == 1 ]]; then
        for mode in simple extended prepared; do
            for feature in rules-20 rules-rewrite stats-on query-log; do
                for target in features-off "$feature"; do
                    run_cell "$feature/$mode" "$target" -S -M "$mode" -c "$clients"
                done
            done
        done
    fi
    # The tableau_hll plugin on pgbench's queries (which it leaves alone): its cost against plain pass-through.
    for mode in simple extended; do
        for target in direct pgproxy tableau; do
            run_cell "tableau_hll/$mode" "$target" -S -M "$mode" -c "$clients"
        done
    done
    # TLS on both legs: sslmode=require to PgBouncer and PgProxy, each with TLS to PostgreSQL (direct: TLS to it).
    for target in direct pgbouncer-tls pgproxy-tls; do
        PGSSLMODE=require run_cell "select-only/tls" "$target" -S -M extended -c "$clients"
    done
    # TLS on the upstream leg only: plain text to the proxies, TLS from them (direct: TLS from pgbench, for scale).
    for target in direct pgbouncer-upstream-tls pgproxy-upstream-tls; do
        if [[ "$target" == direct ]]; then
            PGSSLMODE=require run_cell "select-only/tls-upstream" "$target" -S -M extended -c "$clients"
        else
            run_cell "select-only/tls-upstream" "$target" -S -M extended -c "$clients"
        fi
    done
done

# Bulk streaming: MB/s of COPY TO STDOUT (2 M rows) and a 1 M-row SELECT, client discarding output.
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "CREATE TABLE IF NOT EXISTS bulk AS SELECT g AS id, md5(g::text) AS a, md5((g*7)::text) AS b FROM generate_series(1, 2000000) g" postgres
bulk() {
    local label="$1" target="$2" sql="$3" start end bytes
    start="$(date +%s.%N)"
    bytes="$("$psql" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -At -c "$sql" postgres | wc -c)"
    end="$(date +%s.%N)"
    awk -v l="$label" -v t="${record_as[$target]:-$target}" -v b="$bytes" -v s="$start" -v e="$end" 'BEGIN {printf "%s %s %.1f\n", l, t, b / 1048576 / (e - s)}' >>"$results"
}
for round in $(seq 1 "$rounds"); do
    for target in direct pgbouncer pgproxy; do
        bulk "copy-out-MB/s" "$target" "COPY bulk TO STDOUT"
        bulk "select-1M-MB/s" "$target" "SELECT * FROM bulk WHERE id <= 1000000"
    done
    # FEATURES=1: the same 1M-row SELECT through a mask on one of its text columns (the icpt column), against the
    # instance with everything off (the pgproxy column).
    if [[ "$features_enabled" == 1 ]]; then
        bulk "masked-1M-MB/s" features-off "SELECT * FROM bulk WHERE id <= 1000000"
        bulk "masked-1M-MB/s" masked "SELECT * FROM bulk WHERE id <= 1000000"
    fi
done

# Idle sessions: RSS growth of the proxy per session held open (client plus upstream connection).
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
idle_rss() {
    local target="$1" pid="${pid_of[$1]}" before after
    before="$(rss_kb "$pid")"
    timeout 120 "$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -n -c "$idle_sessions" -j 2 -T 8 \
        -f <(echo '\sleep 1 s') postgres >"$work/idle-$target.txt" 2>&1 &
    local bench=$!
    local peak="$before"
    for _ in $(seq 1 600); do
        local now; now="$(rss_kb "$pid")"; (( now > peak )) && peak="$now"
        kill -0 "$bench" 2>/dev/null || break
        sleep 0.1
    done
    wait "$bench" || true
    # Every session must have been open at once, or the figure means nothing.
    local clients; clients="$(sed -n 's/^number of clients: \([0-9]*\).*/\1/p' "$work/idle-$target.txt")"
    local processed; processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/idle-$target.txt")"
    if [[ "$clients" != "$idle_sessions" || -z "$processed" || "$processed" -lt "$idle_sessions" ]]; then
        say "idle sessions through $target did not all run: $(tail -n 3 "$work/idle-$target.txt" | tr '\n' ' ')"
        return 0
    fi
    say "idle sessions through $target: $clients clients, $processed transactions, RSS $before -> $peak kB"
    awk -v t="$target" -v b="$before" -v p="$peak" -v n="$idle_sessions" 'BEGIN {printf "idle-KiB/session %s %.1f\n", t, (p - b) / n}' >>"$results"
}
idle_rss pgbouncer
idle_rss pgproxy

# --- the table.
echo
echo "PgProxy benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}'), $(pgbouncer --version | head -n 1)"
echo "pgbench -j 2 -T $duration, $clients clients (-C: 4), scale $scale, medians of $rounds alternating rounds"
echo
printf '| %-20s | %9s | %9s | %9s | %9s | %9s | %7s | %8s | %10s | %8s | %8s |\n' "test" "direct" "pgbouncer" "pgproxy" "bouncer/d" "proxy/d" "icpt" "icpt/pgp" "bouncer µs" "proxy µs" "icpt µs"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "----------------------" "-----------" "-----------" "-----------" "-----------" "-----------" "---------" "----------" "------------" "----------" "----------"
for label in $(awk '{print $1}' "$results" | awk '!seen[$0]++'); do
    d="$(awk -v l="$label" '$1==l && $2=="direct" {print $3}' "$results" | median)"
    b="$(awk -v l="$label" '$1==l && $2=="pgbouncer" {print $3}' "$results" | median)"
    p="$(awk -v l="$label" '$1==l && $2=="pgproxy" {print $3}' "$results" | median)"
    i="$(awk -v l="$label" '$1==l && $2=="intercepted" {print $3}' "$results" | median)"
    bc="$(awk -v l="$label" '$1==l && $2=="pgbouncer" && $4!="" {print $4}' "$results" | median)"
    pc="$(awk -v l="$label" '$1==l && $2=="pgproxy" && $4!="" {print $4}' "$results" | median)"
    ic="$(awk -v l="$label" '$1==l && $2=="intercepted" && $4!="" {print $4}' "$results" | median)"
    awk -v l="$label" -v d="$d" -v b="$b" -v p="$p" -v i="$i" -v bc="$bc" -v pc="$pc" -v ic="$ic" 'BEGIN {
        rb = (d == "nan" || d == 0) ? "" : sprintf("%.2f", b / d); rp = (d == "nan" || d == 0) ? "" : sprintf("%.2f", p / d);
        ri = (i == "nan" || p == "nan" || p == 0) ? "" : sprintf("%.2f", i / p);
        printf "| %-20s | %9.1f | %9.1f | %9.1f | %9s | %9s | %7s | %8s | %10s | %8s | %8s |\n", l, d, b, p, rb, rp, (i == "nan" ? "" : sprintf("%.0f", i)), ri, bc, pc, ic }'
done

if [[ "$metrics_enabled" == 1 ]]; then
    read -r scrapes_ok scrapes_failed <"$work/scrapes.txt" || { scrapes_ok=0; scrapes_failed=0; }
    echo
    echo "metrics-on rows: icpt is PgProxy with the metrics endpoint on, scraped every second ($scrapes_ok scrapes, $scrapes_failed failed)"
    (( scrapes_ok > 0 && scrapes_failed == 0 )) || say "the metrics endpoint did not answer every scrape: see $work/pgproxy-metrics.log"
fi

if [[ "$features_enabled" == 1 ]]; then
    echo
    echo "feature rows: pgproxy is an instance with everything off (stats.queries false, no rules, no query log); icpt is"
    echo "the feature: rules-20 (20 query rules matching nothing), rules-rewrite (every query rewritten), stats-on (the"
    echo "defaults), query-log (json, every statement: $(wc -l <"$work/queries.log" 2>/dev/null || echo 0) lines written);"
    echo "masked-1M: the 1M-row SELECT with a keep-last mask on its text column a (icpt) against everything off (pgproxy)"
fi

if [[ "${PERF_STAT:-0}" == 1 ]]; then
    echo
    echo "perf stat per transaction (medians): task-clock µs, context switches, recvfrom, sendto, read, write, epoll_wait"
    echo
    printf '| %-24s | %-9s | %8s | %8s | %8s | %8s | %8s | %8s | %10s |\n' "test" "proxy" "cpu µs" "switches" "recvfrom" "sendto" "read" "write" "epoll_wait"
    printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "--------------------------" "-----------" "----------" "----------" "----------" "----------" "----------" "----------" "------------"
    for key in $(awk '{print $1 "|" $2}' "$perf_results" | awk '!seen[$0]++'); do
        label="${key%|*}"; target="${key##*|}"
        row=""
        for column in 3 4 5 6 7 8 9; do
            row+=" $(awk -v l="$label" -v t="$target" -v c="$column" '$1==l && $2==t {print $c}' "$perf_results" | median)"
        done
        # shellcheck disable=SC2086
        printf '| %-24s | %-9s | %8s | %8s | %8s | %8s | %8s | %8s | %10s |\n' "$label" "$target" $row
    done
fi
