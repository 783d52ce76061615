#!/usr/bin/env bash
# What a SCRAM login costs through PgProxy in each shape of docs/operations.md's "TLS and
# authentication" table: pgbench -C (a new connection per transaction, `SELECT 1`) with a
# SCRAM-SHA-256 user against PostgreSQL 15 with ssl=on, direct and through PgProxy.
# Prints connections per second and PgProxy's own CPU time per connection (/proc/PID/stat).
#
#   bench/login-cost.sh                 # 3 rounds of 8 s per shape, medians
#   ROUNDS=5 DURATION=10 bench/login-cost.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
# shellcheck source=lib/bench-server.sh
source "$repo_root/bench/lib/bench-server.sh"
rounds="${ROUNDS:-3}"
duration="${DURATION:-8}"
say() { printf 'login-cost: %s\n' "$*" >&2; }

pg_bin="$(newest_pg_bin)"
[[ -n "$pg_bin" ]] || { say "PostgreSQL is missing (apt-get install postgresql)"; exit 1; }
pgbench="$pg_bin/pgbench"
psql="$pg_bin/psql"

work="$(bench_work login-cost)"
proxy_pid=""
trap bench_cleanup EXIT

pg_port="$(free_port)"
bench_initdb
cat >"$work/data/pg_hba.conf" <<HBA
local all all trust
host all postgres 127.0.0.1/32 trust
host all bench 127.0.0.1/32 scram-sha-256
HBA
bench_start_postgres "$pg_port" 200
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "SET password_encryption = 'scram-sha-256'; CREATE ROLE bench LOGIN PASSWORD 'bench'" postgres
verifier="$("$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -Atc "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'" postgres)"
printf '"bench" "%s"\n' "$verifier" >"$work/users.txt"
echo 'SELECT 1;' >"$work/select1.sql"

# One instance per shape: the client leg is chosen by the client (sslmode), the upstream leg by redirect.tls.
declare -A port_of=([direct]=$pg_port)
for name in relayed-plain relayed-upstream-tls relayed-both-tls ended-at-proxy fallback; do port_of[$name]="$(free_port)"; done
tls_listen="tls: { mode: allow, cert-file: $work/server.crt, key-file: $work/proxy.key }"
cat >"$work/pgproxy.yml" <<YAML
settings:
  log-level: warning
instances:
  - listen: { name: relayed-plain, host: 127.0.0.1, port: ${port_of[relayed-plain]} }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
  - listen: { name: relayed-upstream-tls, host: 127.0.0.1, port: ${port_of[relayed-upstream-tls]} }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port }
  - listen: { name: relayed-both-tls, host: 127.0.0.1, port: ${port_of[relayed-both-tls]}, $tls_listen }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port }
  - listen: { name: ended-at-proxy, host: 127.0.0.1, port: ${port_of[ended-at-proxy]}, $tls_listen }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port }
    auth: { auth-file: $work/users.txt }
  - listen: { name: fallback, host: 127.0.0.1, port: ${port_of[fallback]}, $tls_listen }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port }
YAML
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!

# Shape: target, the client's sslmode and channel_binding. libpq answers SCRAM with 'y' over TLS when it may bind.
declare -A sslmode_of=([direct-plain]=disable [direct-tls]=require [relayed-plain]=disable [relayed-upstream-tls]=disable
    [relayed-both-tls]=require [ended-at-proxy]=require [fallback]=require)
declare -A binding_of=([relayed-both-tls]=disable)
declare -A target_of=([direct-plain]=direct [direct-tls]=direct)
shapes=(direct-plain direct-tls relayed-plain relayed-upstream-tls relayed-both-tls ended-at-proxy fallback)
export PGPASSWORD=bench

for _ in $(seq 1 100); do
    PGSSLMODE=disable "$psql" -h 127.0.0.1 -p "${port_of[fallback]}" -U bench -Atc 'select 1' postgres >/dev/null 2>&1 && break
    sleep 0.1
done
ticks_per_second="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$proxy_pid/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
results="$work/results.txt"
: >"$results"
run_shape() {
    local shape="$1" warm="${2:-}" target out tps tx before after cpu
    target="${target_of[$shape]:-$shape}"
    before="$(cpu_ticks)"
    out="$(PGSSLMODE="${sslmode_of[$shape]}" PGCHANNELBINDING="${binding_of[$shape]:-prefer}" \
        "$pgbench" -n -C -c 4 -j 2 -T "$duration" -f "$work/select1.sql" -h 127.0.0.1 -p "${port_of[$target]}" -U bench postgres 2>&1)" \
        || { say "pgbench failed for $shape: $out"; tail -n 5 "$work/pgproxy.log" >&2; exit 1; }
    after="$(cpu_ticks)"
    [[ -n "$warm" ]] && return 0
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)"
    tx="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    cpu="-"
    [[ "$target" != direct ]] && cpu="$(awk -v d=$((after - before)) -v hz="$ticks_per_second" -v tx="$tx" 'BEGIN {printf "%.0f", d / hz * 1e6 / tx}')"
    echo "$shape $tps $cpu" >>"$results"
    say "$shape: $tps connections/s, PgProxy CPU $cpu µs/connection"
}

say "warm-up (not recorded)"
for shape in "${shapes[@]}"; do run_shape "$shape" warm; done
for round in $(seq 1 "$rounds"); do
    say "round $round of $rounds"
    for shape in "${shapes[@]}"; do run_shape "$shape"; done
done

printf '\n| shape | client leg | upstream leg | SCRAM | connections/s | PgProxy CPU µs/connection |\n|---|---|---|---|---|---|\n'
declare -A legs_of=([direct-plain]="plain|(direct)|direct" [direct-tls]="TLS|(direct)|direct" [relayed-plain]="plain|plain|relayed"
    [relayed-upstream-tls]="plain|TLS|relayed" [relayed-both-tls]="TLS (channel_binding=disable)|TLS|relayed"
    [ended-at-proxy]="TLS|TLS|ended at PgProxy (auth-file)" [fallback]="TLS|plain (fallback)|relayed after reconnecting")
for shape in "${shapes[@]}"; do
    tps="$(awk -v s="$shape" '$1 == s {print $2}' "$results" | median)"
    cpu="-"
    [[ "${target_of[$shape]:-$shape}" != direct ]] && cpu="$(awk -v s="$shape" '$1 == s {print $3}' "$results" | median)"
    printf '| %s | %s | %.0f | %s |\n' "$shape" "${legs_of[$shape]//|/ | }" "$tps" "$cpu"
done
say "fallback warnings in PgProxy's log: $(grep -c "relayed over a plain-text connection" "$work/pgproxy.log" || true)"
