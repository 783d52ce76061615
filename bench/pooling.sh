#!/usr/bin/env bash
# The pooling rows: PgProxy in transaction mode against direct PostgreSQL and PgBouncer in transaction mode, with the
# same pool size, all with md5 logins (a SCRAM login costs the client a key derivation per connection, which would
# hide what the proxies do). Rounds alternate targets so drift on a shared machine hits all alike; medians printed.
#
#   bench/pooling.sh                     # 3 rounds of 10 s per cell, pool of 20
#   ROUNDS=5 DURATION=20 POOL=20 bench/pooling.sh
#
# Rows:
#   connect-per-tx   pgbench -S -C -c 16: a new connection per transaction (the issue: >= 5x direct, >= PgBouncer)
#   1000-clients     pgbench -S -c 1000 on the pool (>= PgBouncer)
#   prepared         pgbench -S -M prepared (-j = -c, see docs/pooling.md) against PgProxy's own -M extended (>= 0.9)
#   idle-KiB/client  RSS growth per client with IDLE_CLIENTS (default 10000) idle clients on the pool (<= 16 KiB)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
rounds="${ROUNDS:-3}"
duration="${DURATION:-10}"
pool="${POOL:-20}"
clients="${CLIENTS:-16}"
idle_clients="${IDLE_CLIENTS:-10000}"
scale="${SCALE:-10}"
say() { printf 'bench: %s\n' "$*" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
[[ -n "$(newest_pg_bin)" ]] || need+=(postgresql)
[[ -f /usr/include/pg_query/pg_query.proto ]] || need+=(libpg-query-dev)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
if (( ${#need[@]} > 0 )); then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        say "missing: ${need[*]} (sudo apt-get install ${need[*]})"; exit 1
    fi
fi
pg_bin="$(newest_pg_bin)"
pgbench="$pg_bin/pgbench"
psql="$pg_bin/psql"
export PGSSLMODE=disable PGPASSWORD=bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d /tmp/pgproxy-pooling.XXXXXX)"
chmod 755 "$work"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work"
pids=()
cleanup() {
    for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pg_port="$(free_port)"; bouncer_port="$(free_port)"; proxy_port="$(free_port)"
as_postgres "$pg_bin/initdb" -D "$work/data" -A trust -U postgres --encoding=UTF8 --locale=C >/dev/null
cat >>"$work/data/pg_hba.conf" <<HBA
host all bench 127.0.0.1/32 md5
HBA
sed -i 's/^host\(.*\)127.0.0.1\/32\(.*\)trust/host\1127.0.0.1\/32\2md5/' "$work/data/pg_hba.conf"
as_postgres "$pg_bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work -c max_connections=300 -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c password_encryption=md5" start >/dev/null
"$psql" -h "$work" -p "$pg_port" -U postgres -qc "CREATE USER bench PASSWORD 'bench' SUPERUSER" postgres
"$psql" -h "$work" -p "$pg_port" -U postgres -qc "CREATE DATABASE bench OWNER bench" postgres
"$pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$pg_port" -U bench bench >/dev/null 2>&1
verifier="$("$psql" -h "$work" -p "$pg_port" -U postgres -Atc "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'" postgres)"
printf '"bench" "%s"\n' "$verifier" >"$work/users.txt"
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work/users.txt"

cat >"$work/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = md5
auth_file = $work/users.txt
pool_mode = transaction
max_client_conn = 20000
default_pool_size = $pool
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
[[ "$(id -u)" -eq 0 ]] && chown postgres "$work/pgbouncer.ini"
as_postgres pgbouncer -d "$work/pgbouncer.ini" >/dev/null 2>&1

cat >"$work/pgproxy.yml" <<YAML
settings: {log-level: warning}
stats: {queries: false}
instances:
  - listen: {name: pooled, host: 127.0.0.1, port: $proxy_port}
    redirect: {name: postgresql, host: 127.0.0.1, port: $pg_port, tls: {mode: disable}}
    auth: {auth-file: $work/users.txt}
    limits: {max-connections: 20000}
    pool: {mode: transaction, size: $pool}
YAML
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_port() { for _ in $(seq 1 200); do "$psql" -h 127.0.0.1 -p "$1" -U bench -Atc 'select 1' bench >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
wait_port "$proxy_port" || { say "PgProxy did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
wait_port "$bouncer_port" || { say "PgBouncer did not start"; cat "$work/pgbouncer.log" >&2; exit 1; }
pids+=("$(cat "$work/pgbouncer.pid")")
declare -A port_of=([direct]=$pg_port [pgbouncer]=$bouncer_port [pgproxy]=$proxy_port)
results="$work/results.txt"
: >"$results"

# One pgbench run; prints "tps errors" (errors: failed or aborted clients' lines in pgbench's output).
cell() {
    local target="$1"; shift
    local out="$work/cell.txt"
    timeout $((duration + 120)) "$pgbench" -h 127.0.0.1 -p "${port_of[$target]}" -U bench -n -T "$duration" "$@" bench >"$out" 2>&1 || true
    local tps; tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | tail -n 1)"
    local errors; errors="$(grep -cE 'error|aborted' "$out" || true)"
    [[ -n "$tps" ]] || { say "$target $*: no result: $(tail -n 2 "$out" | tr '\n' ' ')"; tps=0; }
    echo "$tps $errors"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

row() {
    local name="$1" targets="$2"; shift 2
    for round in $(seq 1 "$rounds"); do
        for target in $targets; do
            read -r tps errors < <(cell "$target" "$@")
            say "$name round $round $target: $tps tps, $errors error lines"
            echo "$name $target $tps $errors" >>"$results"
        done
    done
}

row connect-per-tx "direct pgbouncer pgproxy" -S -C -c "$clients" -j 2
row 1000-clients "pgbouncer pgproxy" -S -c 1000 -j 4
row prepared "pgbouncer pgproxy" -S -M prepared -c "$clients" -j "$clients"
row extended "pgproxy" -S -M extended -c "$clients" -j "$clients"

# Idle clients: logged in, then silent (a \sleep script sends nothing), so none holds a server connection.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
before="$(rss_kb "$proxy_pid")"
timeout 300 "$pgbench" -h 127.0.0.1 -p "$proxy_port" -U bench -n -c "$idle_clients" -j 4 -T 20 -f <(echo '\sleep 1 s') bench >"$work/idle.txt" 2>&1 &
idle_run=$!
peak="$before"
connected=0
for _ in $(seq 1 300); do
    now="$(rss_kb "$proxy_pid")"; (( now > peak )) && peak="$now"
    connected="$(ls "/proc/$proxy_pid/fd" | wc -l)"
    kill -0 "$idle_run" 2>/dev/null || break
    sleep 1
done
wait "$idle_run" || true
say "idle clients: $(grep -E '^number of clients|actually processed' "$work/idle.txt" | tr '\n' ' '); RSS $before -> $peak kB; descriptors at the last sample $connected"
awk -v b="$before" -v p="$peak" -v n="$idle_clients" 'BEGIN {printf "idle-KiB/client pgproxy %.1f 0\n", (p - b) / n}' >>"$results"

echo
echo "row                target       median-tps  error-lines  ratio-to-reference"
for name in connect-per-tx 1000-clients prepared; do
    for target in direct pgbouncer pgproxy; do
        values="$(awk -v n="$name" -v t="$target" '$1 == n && $2 == t {print $3}' "$results")"
        [[ -n "$values" ]] || continue
        errors="$(awk -v n="$name" -v t="$target" '$1 == n && $2 == t {s += $4} END {print s + 0}' "$results")"
        printf '%-18s %-12s %10s %12s\n' "$name" "$target" "$(median <<<"$values")" "$errors"
    done
done
ext="$(awk '$1 == "extended" {print $3}' "$results" | median)"
prep="$(awk '$1 == "prepared" && $2 == "pgproxy" {print $3}' "$results" | median)"
direct_c="$(awk '$1 == "connect-per-tx" && $2 == "direct" {print $3}' "$results" | median)"
proxy_c="$(awk '$1 == "connect-per-tx" && $2 == "pgproxy" {print $3}' "$results" | median)"
bouncer_c="$(awk '$1 == "connect-per-tx" && $2 == "pgbouncer" {print $3}' "$results" | median)"
bouncer_k="$(awk '$1 == "1000-clients" && $2 == "pgbouncer" {print $3}' "$results" | median)"
proxy_k="$(awk '$1 == "1000-clients" && $2 == "pgproxy" {print $3}' "$results" | median)"
awk -v e="$ext" -v p="$prep" -v d="$direct_c" -v x="$proxy_c" -v b="$bouncer_c" -v bk="$bouncer_k" -v pk="$proxy_k" 'BEGIN {
    printf "connect-per-tx: pgproxy/direct %.2f (target >= 5), pgproxy/pgbouncer %.2f (target >= 1)\n", x / d, x / b
    printf "1000-clients: pgproxy/pgbouncer %.2f (target >= 1)\n", pk / bk
    printf "prepared: pgproxy prepared / pgproxy extended %.2f (target >= 0.9)\n", p / e
}'
awk '$1 == "idle-KiB/client" {printf "idle clients: %.1f KiB per client (target <= 16)\n", $3}' "$results"
