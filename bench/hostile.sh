#!/usr/bin/env bash
# The hostile-client soak (issue 16, item 2): PgProxy in front of a throwaway PostgreSQL, pgbench through it the
# whole time, and bench/PgProxy.Hostile sending FRAMES mutated frames of real sessions (bit flips, cuts, wrong
# lengths, reordering, garbage at start-up and inside TLS, half-sent frames left hanging) over CONCURRENCY sessions.
#
#   bench/hostile.sh                              # 1,000,000 frames, seed 1
#   FRAMES=20000 SEED=7 CONCURRENCY=16 bench/hostile.sh
#
# Passes (exit 0) when: the proxy is still up, every pgbench run reported 0 failed transactions and no aborted
# client, the tool reports 0 failures (every session ended as the limits promise), and within 10 s of the end the
# proxy's sockets, pipes and threads are back to their baseline (taken after a warm-up) and its RSS within 25% of it.
# The figures go to stdout and to $RESULTS (default bench/results/hostile-DATE.txt).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
# shellcheck source=lib/bench-server.sh
source "$repo_root/bench/lib/bench-server.sh"
# shellcheck source=lib/proc-sample.sh
source "$repo_root/bench/lib/proc-sample.sh"
frames="${FRAMES:-1000000}"
seed="${SEED:-1}"
concurrency="${CONCURRENCY:-32}"
startup_timeout=2
idle_timeout=3
say() { printf 'hostile: %s\n' "$*" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pg_bin="$(newest_pg_bin)"
[[ -n "$pg_bin" ]] || { say "PostgreSQL is missing (apt-get install postgresql)"; exit 1; }
psql="$pg_bin/psql"; pgbench="$pg_bin/pgbench"
export PGSSLMODE=disable
work="$(bench_work hostile)"
pids=()
cleanup() {
    for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    bench_cleanup
}
trap cleanup EXIT
mkdir -p "$repo_root/bench/results"
results="${RESULTS:-$repo_root/bench/results/hostile-$(date -u +%Y%m%dT%H%M).txt}"

pg_port="$(free_port)"; proxy_port="$(free_port)"
bench_initdb
bench_start_postgres "$pg_port" 200
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE bench" postgres
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE ROLE hostile LOGIN" postgres
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE hostile OWNER hostile" postgres
"$psql" -h 127.0.0.1 -p "$pg_port" -U hostile -qc "CREATE TABLE copied (a int, b text)" hostile
"$pgbench" -i -q -s 1 -h 127.0.0.1 -p "$pg_port" -U postgres bench >/dev/null 2>&1

cat >"$work/pgproxy.yml" <<YAML
settings: {log-level: warning}
instances:
  - listen: {name: proxy, host: 127.0.0.1, port: $proxy_port, tls: {mode: allow, cert-file: $work/server.crt, key-file: $work/proxy.key}}
    redirect: {name: postgresql, host: 127.0.0.1, port: $pg_port, tls: {mode: disable}}
    limits: {startup-timeout: ${startup_timeout}s, client-idle-timeout: ${idle_timeout}s, max-message-size: 1MB}
YAML
dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
dotnet build "$repo_root/bench/PgProxy.Hostile/PgProxy.Hostile.csproj" -c Release -nologo -v q >/dev/null
dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 1 200); do "$psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -Atc 'select 1' bench >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$proxy_pid" || { say "PgProxy did not start"; cat "$work/pgproxy.log" >&2; exit 1; }

# Warm-up, then the baseline: the first sessions load code and grow the pools, which is not a leak.
"$pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -n -S -c 4 -j 2 -T 5 bench >/dev/null 2>&1
dotnet "$repo_root/bench/PgProxy.Hostile/bin/Release/net10.0/PgProxy.Hostile.dll" --port "$proxy_port" --frames 20000 \
    --concurrency 16 --seed 999 --tls --stalls 0 --startup-timeout "$startup_timeout" --idle-timeout "$idle_timeout" >/dev/null || true
sleep 2
base_rss="$(rss_kb "$proxy_pid")"; base_fd="$(fd_count "$proxy_pid")"; base_io="$(io_fd_count "$proxy_pid")"; base_threads="$(thread_count "$proxy_pid")"
say "baseline: RSS $base_rss kB, $base_fd descriptors ($base_io sockets, pipes and the like), $base_threads threads"

# pgbench in rounds of 20 s for as long as the hostile run lasts (a round gives its failures only when it ends).
: >"$work/pgbench.txt"
(
    while [[ ! -f "$work/hostile.done" ]]; do
        "$pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -n -c 4 -j 2 -T 20 bench >>"$work/pgbench.txt" 2>&1 || echo "pgbench exited with $?" >>"$work/pgbench.txt"
    done
) &
bench_loop=$!
pids+=("$bench_loop")
started="$(date +%s)"
peak_rss=0
( while kill -0 "$proxy_pid" 2>/dev/null && [[ ! -f "$work/hostile.done" ]]; do r="$(rss_kb "$proxy_pid")"; echo "$r" >>"$work/rss.txt"; sleep 1; done ) &
pids+=("$!")
hostile_status=0
dotnet "$repo_root/bench/PgProxy.Hostile/bin/Release/net10.0/PgProxy.Hostile.dll" --port "$proxy_port" --frames "$frames" \
    --concurrency "$concurrency" --seed "$seed" --tls --startup-timeout "$startup_timeout" --idle-timeout "$idle_timeout" \
    | tee "$work/hostile.txt" >&2 || hostile_status=$?
touch "$work/hostile.done"
wait "$bench_loop" || true
ended="$(date +%s)"
peak_rss="$(sort -n "$work/rss.txt" | tail -n 1)"

up=yes; kill -0 "$proxy_pid" 2>/dev/null || up=no
# Back to baseline: sampled every 0.5 s for up to 10 s after the end.
back=no; waited=0
for i in $(seq 1 20); do
    [[ "$up" == yes ]] || break
    rss="$(rss_kb "$proxy_pid")"; fds="$(fd_count "$proxy_pid")"; io="$(io_fd_count "$proxy_pid")"; threads="$(thread_count "$proxy_pid")"
    if (( io <= base_io && threads <= base_threads + 2 && rss <= base_rss * 125 / 100 )); then back=yes; waited="$(awk -v i="$i" 'BEGIN {print i * 0.5}')"; break; fi
    sleep 0.5
done
runs="$(grep -c '^number of failed transactions' "$work/pgbench.txt" || true)"
failed_tx="$(awk '/^number of failed transactions/ {s += $5} END {print s + 0}' "$work/pgbench.txt")"
tx="$(awk '/^number of transactions actually processed/ {s += $6} END {print s + 0}' "$work/pgbench.txt")"
aborted="$(grep -cE 'aborted|pgbench exited|error' "$work/pgbench.txt" || true)"
proxy_errors="$(grep -cE 'Unhandled|crit|fail:' "$work/pgproxy.log" || true)"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$repo_root" rev-parse --short HEAD), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: FRAMES=$frames SEED=$seed CONCURRENCY=$concurrency bench/hostile.sh (startup-timeout ${startup_timeout}s, client-idle-timeout ${idle_timeout}s, TLS offered)"
    grep '^hostile:' "$work/hostile.txt" | grep -v ' frames, .* sessions, ' || true
    echo "duration: $((ended - started)) s"
    echo "proxy up at the end: $up; log lines that look like defects (Unhandled, crit, fail): $proxy_errors"
    echo "pgbench: $runs runs, $tx transactions, $failed_tx failed, $aborted error lines"
    echo "RSS: baseline $base_rss kB, peak $peak_rss kB, at the end $rss kB"
    echo "descriptors: baseline $base_fd ($base_io sockets, pipes and the like), at the end $fds ($io); threads: baseline $base_threads, at the end $threads"
    echo "back to baseline: $back (after ${waited} s; bound 10 s: sockets, pipes and the like <= baseline, threads <= baseline + 2, RSS <= 125% of baseline)"
} | tee "$results"
if [[ "$up" == yes && "$hostile_status" -eq 0 && "$failed_tx" -eq 0 && "$aborted" -eq 0 && "$runs" -gt 0 && "$back" == yes ]]; then
    echo "PASS" | tee -a "$results"
else
    echo "FAIL" | tee -a "$results"
    tail -n 20 "$work/pgproxy.log" >&2
    exit 1
fi
