#!/usr/bin/env bash
# compare.sh's masked-1M-MB/s row alone: the 1M-row SELECT of its bulk table through a PgProxy instance with a mask
# (keep-last: 4) on the text column a, against the same process's instance with everything off, in alternating
# rounds. The setup, the query and the measure (psql -At, output counted by wc -c) are compare.sh's. Prints the
# median MB/s of each target, masked/off, and each proxy's median CPU seconds per run (/proc/PID/stat).
#
#   bench/masked-bulk.sh                                   # 7 rounds
#   ROUNDS=9 bench/masked-bulk.sh
#   BEFORE=/tmp/old/net10.0 bench/masked-bulk.sh           # also an older build's masked instance, in the same rounds
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
# shellcheck source=lib/bench-server.sh
source "$repo_root/bench/lib/bench-server.sh"
rounds="${ROUNDS:-7}"
before="${BEFORE:-}"
say() { printf 'masked-bulk: %s\n' "$*" >&2; }

pg_bin="$(newest_pg_bin)"
[[ -n "$pg_bin" ]] || { say "PostgreSQL is missing (apt-get install postgresql)"; exit 1; }
psql="$pg_bin/psql"
export PGSSLMODE=disable

work="$(bench_work masked-bulk)"
proxy_pid=""
before_pid=""
cleanup() {
    [[ -n "$before_pid" ]] && kill "$before_pid" 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 300); do "$psql" -h 127.0.0.1 -p "$1" -U postgres -Atc 'select 1' postgres >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second="$(getconf CLK_TCK)"

pg_port="$(free_port)"
bench_initdb
bench_start_postgres "$pg_port"
say "creating compare.sh's bulk table (2 M rows)"
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "CREATE TABLE IF NOT EXISTS bulk AS SELECT g AS id, md5(g::text) AS a, md5((g*7)::text) AS b FROM generate_series(1, 2000000) g" postgres

# The off and masked instances of compare.sh's FEATURES=1 process.
instances() {
    echo "stats: { queries: false }"
    echo "settings: { log-level: warning }"
    echo "instances:"
    if [[ -n "$1" ]]; then
        echo "  - listen: { name: off, host: 127.0.0.1, port: $1 }"
        echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
    fi
    echo "  - listen: { name: masked, host: 127.0.0.1, port: $2 }"
    echo "    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }"
    echo "    masks:"
    echo "      - { name: bulk-a, columns: [public.bulk.a], with: { keep-last: 4 } }"
}
declare -A port_of pid_of
port_of[off]="$(free_port)"; port_of[masked]="$(free_port)"
instances "${port_of[off]}" "${port_of[masked]}" >"$work/pgproxy.yml"
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!
pid_of[off]=$proxy_pid; pid_of[masked]=$proxy_pid
targets=(off masked)
if [[ -n "$before" ]]; then
    port_of[masked-before]="$(free_port)"
    instances "" "${port_of[masked-before]}" >"$work/pgproxy-before.yml"
    dotnet "$before/pgproxy.dll" --config "$work/pgproxy-before.yml" >"$work/pgproxy-before.log" 2>&1 &
    before_pid=$!
    pid_of[masked-before]=$before_pid
    targets+=(masked-before)
fi
for target in "${targets[@]}"; do
    wait_port "${port_of[$target]}" || { say "PgProxy's $target instance did not start"; cat "$work"/pgproxy*.log >&2; exit 1; }
done

# One run: compare.sh's bulk(): MB/s of psql's output, and the proxy's CPU seconds for it.
results="$work/results.txt"
: >"$results"
run() {
    local target="$1" start end bytes ticks
    ticks="$(cpu_ticks "${pid_of[$target]}")"
    start="$(date +%s.%N)"
    bytes="$("$psql" -h 127.0.0.1 -p "${port_of[$target]}" -U postgres -At -c "SELECT * FROM bulk WHERE id <= 1000000" postgres | wc -c)"
    end="$(date +%s.%N)"
    ticks=$(( $(cpu_ticks "${pid_of[$target]}") - ticks ))
    awk -v t="$target" -v b="$bytes" -v s="$start" -v e="$end" -v c="$ticks" -v hz="$ticks_per_second" \
        'BEGIN {printf "%s %.1f %.2f\n", t, b / 1048576 / (e - s), c / hz}' >>"$results"
}
# One run each, not recorded: the connection pools, the catalog read and the JIT are warm before round 1.
for target in "${targets[@]}"; do run "$target"; done
: >"$results"
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$rounds"); do
    # The order turns each round, so drift on a shared machine falls on every target alike.
    for i in "${!targets[@]}"; do
        run "${targets[$(( (i + round) % ${#targets[@]} ))]}"
    done
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

off="$(awk '$1 == "off" {print $2}' "$results" | median)"
printf '%-14s %8s %8s %10s   %s\n' target MB/s x-off cpu-s runs
for target in "${targets[@]}"; do
    mbs="$(awk -v t="$target" '$1 == t {print $2}' "$results" | median)"
    cpu="$(awk -v t="$target" '$1 == t {print $3}' "$results" | median)"
    runs="$(awk -v t="$target" '$1 == t {printf "%s ", $2}' "$results")"
    printf '%-14s %8s %8s %10s   %s\n' "$target" "$mbs" "$(awk -v m="$mbs" -v o="$off" 'BEGIN {printf "%.2f", m / o}')" "$cpu" "$runs"
done
