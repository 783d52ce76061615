#!/usr/bin/env bash
# Where PgProxy's CPU goes under pgbench: perf record of the pgproxy process (with .NET's perf map, so managed
# frames have names; W^X off so perf can map them) during pgbench -S, for one shape of the relay. Prints the
# share of each library and the top symbols, self time.
#
#   bench/profile.sh                    # plain text, -M prepared
#   SHAPE=tls-upstream MODE=extended bench/profile.sh
#   SHAPE=tls bench/profile.sh          # TLS on both legs
#   TOP=40 DURATION=10 bench/profile.sh
#   STAT=1 SHAPE=tls bench/profile.sh   # perf stat instead: CPU µs and context switches per transaction
#   STAT=threads bench/profile.sh       # the same per thread
#   STATS=false STAT=1 bench/profile.sh # with per-query statistics off (stats.queries: false)
#   QUERY_LOG=1 MODE=extended bench/profile.sh   # with the query log on (json, every statement)
#   RULES=20 MODE=simple bench/profile.sh        # with compare.sh's 20 query rules that match nothing
#   RULES=rewrite MODE=simple bench/profile.sh   # with compare.sh's rule that rewrites every pgbench query
#   PGPROXY=artifacts/linux-x64/pgproxy STAT=1 bench/profile.sh   # a published binary instead of the build tree
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
# shellcheck source=lib/bench-server.sh
source "$repo_root/bench/lib/bench-server.sh"
shape="${SHAPE:-plain}"
mode="${MODE:-prepared}"
duration="${DURATION:-8}"
top="${TOP:-30}"
say() { printf 'profile: %s\n' "$*" >&2; }
command -v perf >/dev/null || { say "perf is missing (apt-get install linux-perf)"; exit 1; }
pg_bin="$(newest_pg_bin)"

work="$(bench_work profile)"
proxy_pid=""
# The perf map .NET writes for the process goes too.
trap 'bench_cleanup; rm -f "/tmp/perf-${proxy_pid:-none}.map"' EXIT

pg_port="$(free_port)"; proxy_port="$(free_port)"
bench_initdb
bench_start_postgres "$pg_port" 100
"$pg_bin/pgbench" -i -q -s 10 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

case "$shape" in
    plain) listen="{ name: proxy, host: 127.0.0.1, port: $proxy_port }"; upstream_tls=disable; sslmode=disable ;;
    tls-upstream) listen="{ name: proxy, host: 127.0.0.1, port: $proxy_port }"; upstream_tls=require; sslmode=disable ;;
    tls) listen="{ name: proxy, host: 127.0.0.1, port: $proxy_port, tls: { mode: require, cert-file: $work/server.crt, key-file: $work/proxy.key } }"
         upstream_tls=require; sslmode=require ;;
    *) say "SHAPE is plain, tls-upstream or tls"; exit 1 ;;
esac
cat >"$work/pgproxy.yml" <<YAML
settings:
  log-level: warning
stats:
  queries: ${STATS:-true}
$([[ "${QUERY_LOG:-0}" == 1 ]] && echo "query-log: { file: $work/queries.log, format: json }")
instances:
  - listen: $listen
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: $upstream_tls } }
YAML
# The same rules as compare.sh's FEATURES=1 rows.
case "${RULES:-}" in
    '') ;;
    20) echo "    rules:" >>"$work/pgproxy.yml"
        for n in $(seq 1 20); do
            echo "      - { name: no-match-$n, match: { query: 'FROM\\s+orders_$n\\b' }, refuse: {} }" >>"$work/pgproxy.yml"
        done ;;
    rewrite) cat >>"$work/pgproxy.yml" <<'YAML'
    rules:
      - { name: rewrite-all, match: { query: 'SELECT abalance' }, rewrite: 'SELECT /* rewritten */ abalance' }
YAML
        ;;
    *) say "RULES is 20 or rewrite"; exit 1 ;;
esac
if [[ -n "${PGPROXY:-}" ]]; then
    proxy_command=("$PGPROXY")
    export DOTNET_BUNDLE_EXTRACT_BASE_DIR="$work/bundle"
else
    dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
    proxy_command=(dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll")
fi
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 "${proxy_command[@]}" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 100); do
    PGSSLMODE=$sslmode "$pg_bin/psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && break
    sleep 0.1
done

export PGSSLMODE=$sslmode
say "warm-up, then $duration s of perf record during pgbench -S -M $mode -c 16 ($shape)"
"$pg_bin/pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -j 2 -c 16 -S -M "$mode" -T 5 postgres >/dev/null 2>&1
"$pg_bin/pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -j 2 -c 16 -S -M "$mode" -T $((duration + 2)) postgres >"$work/pgbench.txt" 2>&1 &
bench=$!
sleep 1
if [[ "${STAT:-0}" == threads ]]; then
    # STAT=threads: the same, per thread (which threads burn the CPU and take the context switches).
    perf stat --per-thread -x, -e task-clock,context-switches -o "$work/stat.txt" -p "$proxy_pid" -- sleep "$duration" >/dev/null 2>&1
    wait "$bench"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.txt")"
    awk -F, -v n="$(awk -v t="$tps" -v d="$duration" 'BEGIN {print t * d}')" '
        $4 ~ /task-clock/ {cpu[$1] = $2} $4 ~ /context-switches/ {cs[$1] = $2}
        END {printf "%-28s %12s %14s\n", "thread", "CPU µs/tx", "switches/tx"
             for (t in cpu) if (cpu[t] * 1000 / n >= 0.05 || cs[t] / n >= 0.005) printf "%-28s %12.2f %14.3f\n", t, cpu[t] * 1000 / n, cs[t] / n}' "$work/stat.txt" | sort -k2 -nr
    exit 0
fi
if [[ "${STAT:-0}" == 1 ]]; then
    # STAT=1: CPU and switches per transaction instead of a profile.
    perf stat -x, -e task-clock,context-switches -o "$work/stat.txt" -p "$proxy_pid" -- sleep "$duration" >/dev/null 2>&1
    wait "$bench"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.txt")"
    awk -F, -v tps="$tps" -v d="$duration" '$3 ~ /task-clock/ {cpu = $1} $3 ~ /context-switches/ {cs = $1}
        END {printf "tps %.0f, %.1f µs CPU and %.2f context switches per transaction\n", tps, cpu * 1000 / (tps * d), cs / (tps * d)}' "$work/stat.txt"
    exit 0
fi
perf record -F 1999 -g -o "$work/perf.data" -p "$proxy_pid" -- sleep "$duration" >/dev/null 2>&1
wait "$bench"
grep -E '^tps' "$work/pgbench.txt" >&2 || true
echo "by library:"
perf report -i "$work/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 12
echo "top symbols (self):"
perf report -i "$work/perf.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n "$top"
if [[ -n "${CALLERS:-}" ]]; then
    echo "callers of $CALLERS:"
    perf report -i "$work/perf.data" --no-children -G --symbol-filter="$CALLERS" --stdio 2>/dev/null | grep -v '^$' | head -n 60
fi
