#!/usr/bin/env bash
# The soak (issue 16, item 6): a mixed workload through PgProxy for DURATION seconds, sampled every 10 s.
#
#   bench/soak.sh 180            # 3 minutes (what CI runs, from scripts/test.sh)
#   bench/soak.sh 1800           # the 30-minute figure
#   PGPROXY=FILE bench/soak.sh 1800   # a published binary, or a copy of the build tree (not rebuilt under the run)
#
# Workload, all at once, against one instance with TLS offered: pgbench -M simple, -M extended and -M prepared for
# the whole run (plus one -S client over TLS); a 100 MB result in a loop; COPY of 10 MB in and out in a loop; a
# statement cancelled through the proxy every 2 s; a reconnect storm (pgbench -C, 16 clients) every 20 s; a reload
# (SIGHUP) every 10 s; a psql session over TLS every second.
# Samples: time, RSS, GC heap (pgproxy_gc_heap_bytes from the metrics endpoint), descriptors, threads, and the
# p50/p95/p99 latency of pgbench's transactions in the last 10 s, into soak.csv, drawn into soak.png (gnuplot; the
# Debian package gnuplot-nox is installed when missing and we are root). Both go to $OUT (default bench/results/).
# Asserts at the end, exiting 1 when one fails: after the warm-up (the first third, at most 5 minutes) RSS stays
# within +-10% of its first sample after it; descriptors and threads are flat (the last third's mean at most 10%
# + 5 above the first third's after warm-up), and sockets, pipes and threads come back to their idle baseline within
# 10 s of the end (files, the assemblies loaded as code is first used, stay open); 0
# unexpected errors (failed pgbench transactions, aborted clients, errors other than the cancels' 57014).
set -euo pipefail

duration="${1:?usage: bench/soak.sh DURATION_SECONDS}"
(( duration >= 60 )) || { echo "soak: DURATION must be at least 60 s" >&2; exit 2; }
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib/postgres.sh
source "$repo_root/scripts/lib/postgres.sh"
# shellcheck source=lib/bench-server.sh
source "$repo_root/bench/lib/bench-server.sh"
# shellcheck source=lib/proc-sample.sh
source "$repo_root/bench/lib/proc-sample.sh"
say() { printf 'soak: %s\n' "$*" >&2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out="${OUT:-$repo_root/bench/results}"
mkdir -p "$out"

if ! command -v gnuplot >/dev/null; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing gnuplot-nox (for the chart)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; } \
            || say "gnuplot-nox could not be installed: no chart"
    else
        say "gnuplot is missing (apt-get install gnuplot-nox): no chart"
    fi
fi

pg_bin="$(newest_pg_bin)"
[[ -n "$pg_bin" ]] || { say "PostgreSQL is missing (apt-get install postgresql)"; exit 1; }
psql="$pg_bin/psql"; pgbench="$pg_bin/pgbench"
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
work="$(bench_work soak)"
pids=()
cleanup() {
    for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT

pg_port="$(free_port)"; proxy_port="$(free_port)"; metrics_port="$(free_port)"
bench_initdb
bench_start_postgres "$pg_port" 200
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE bench" postgres
"$pgbench" -i -q -s 5 -h 127.0.0.1 -p "$pg_port" -U postgres bench >/dev/null 2>&1
"$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE TABLE copied (a int, b text)" bench
seq 1 200000 | awk '{printf "%d\tsoak row %d with some text to make it about fifty bytes\n", $1, $1}' >"$work/copy.tsv"

cat >"$work/pgproxy.yml" <<YAML
settings: {log-level: warning}
metrics: {listen: {host: 127.0.0.1, port: $metrics_port}}
instances:
  - listen: {name: proxy, host: 127.0.0.1, port: $proxy_port, tls: {mode: allow, cert-file: $work/server.crt, key-file: $work/proxy.key}}
    redirect: {name: postgresql, host: 127.0.0.1, port: $pg_port, tls: {mode: disable}}
YAML
if [[ -n "${PGPROXY:-}" ]]; then
    # A published binary, or a copy of the build tree: a long run must not see its assemblies rebuilt under it.
    proxy_command=("$PGPROXY")
else
    [[ -n "${SOAK_NO_BUILD:-}" ]] || dotnet build "$repo_root/src/PgProxy/PgProxy.csproj" -c Release -nologo -v q >/dev/null
    proxy_command=(dotnet "$repo_root/src/PgProxy/bin/Release/net10.0/pgproxy.dll")
fi
"${proxy_command[@]}" --config "$work/pgproxy.yml" >"$work/pgproxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 1 300); do "$psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -Atc 'select 1' bench >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$proxy_pid" || { say "PgProxy did not start"; cat "$work/pgproxy.log" >&2; exit 1; }
idle_fd="$(fd_count "$proxy_pid")"; idle_io="$(io_fd_count "$proxy_pid")"; idle_threads="$(thread_count "$proxy_pid")"
say "PgProxy $proxy_pid up: $idle_fd descriptors, $idle_threads threads idle; running for $duration s"

errors="$work/errors.txt"; : >"$errors"
deadline=$(( $(date +%s) + duration ))
running() { (( $(date +%s) < deadline )); }
db() { "$psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -X -q "$@" bench; }
# Each loop writes what went wrong to $errors, one line per error, prefixed with its name.
loop() {
    local name="$1" pause="$2"; shift 2
    while running; do
        if ! "$@" >"$work/$name.out" 2>&1; then
            sed "s/^/$name: /" "$work/$name.out" | tail -n 3 >>"$errors"
        fi
        sleep "$pause"
    done
}
large_result() { db -Atc "SELECT repeat('x', 1000) FROM generate_series(1, 100000)" | wc -c | awk '$1 < 100000000 {print "short result: " $1 " bytes"; exit 1}'; }
copy_in_out() {
    db -c "TRUNCATE copied" -c "\\copy copied FROM '$work/copy.tsv'" -c "\\copy copied TO '/dev/null'" >/dev/null
}
cancel() {
    # psql sends a CancelRequest (through the proxy) on SIGINT, once the statement runs on the server (seen in
    # pg_stat_activity, asked directly); the statement must end with 57014 and nothing else.
    local status=0 run
    "$psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -X -q -c "SELECT pg_sleep(30) AS soak_cancel" bench >"$work/cancel.txt" 2>&1 &
    run=$!
    for _ in $(seq 1 100); do
        [[ "$("$psql" -h 127.0.0.1 -p "$pg_port" -U postgres -X -Atc "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS soak_cancel' AND state = 'active' AND pid <> pg_backend_pid()" postgres)" == 1 ]] && break
        sleep 0.1
    done
    kill -INT "$run" 2>/dev/null || true
    wait "$run" || status=$?
    grep -q 'canceling statement due to user request' "$work/cancel.txt" || { cat "$work/cancel.txt"; echo "cancel: exit $status without 57014"; return 1; }
}
storm() { storm_run="$work/storm-$(date +%s%N).txt"; "$pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -n -S -C -c 16 -j 2 -T 3 bench >"$storm_run" 2>&1; check_pgbench "$storm_run"; }
tls_session() { PGSSLMODE=require "$psql" -h 127.0.0.1 -p "$proxy_port" -U postgres -X -Atc "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" bench | grep -qx f; }
reload() { kill -HUP "$proxy_pid"; echo sent >>"$work/reloads.txt"; }
# pgbench's own summary: failed transactions and aborted clients are errors.
check_pgbench() {
    local failed
    failed="$(awk '/^number of failed transactions/ {print $5}' "$1")"
    if [[ -z "$failed" ]] || (( failed > 0 )) || grep -qE 'aborted|error' "$1"; then
        echo "pgbench $1: ${failed:-no summary} failed; $(grep -E 'aborted|error' "$1" | head -n 3 | tr '\n' ' ')"; return 1
    fi
}

# pgbench for the whole run, one per protocol mode, each logging every transaction's latency (-l).
for mode in simple extended prepared; do
    (cd "$work" && exec "$pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -n -M "$mode" -c 2 -j 1 -T "$duration" -l --log-prefix="lat-$mode" bench >"$work/pgbench-$mode.txt" 2>&1) &
    pids+=("$!")
done
(cd "$work" && PGSSLMODE=require exec "$pgbench" -h 127.0.0.1 -p "$proxy_port" -U postgres -n -S -c 1 -j 1 -T "$duration" bench >"$work/pgbench-tls.txt" 2>&1) &
pids+=("$!")
loop large 1 large_result & pids+=("$!")
loop copy 1 copy_in_out & pids+=("$!")
loop cancel 2 cancel & pids+=("$!")
loop storm 17 storm & pids+=("$!")
loop reload 10 reload & pids+=("$!")
loop tls 1 tls_session & pids+=("$!")

csv="$out/soak.csv"
echo "seconds,rss_mb,gc_heap_mb,descriptors,threads,p50_ms,p95_ms,p99_ms,transactions" >"$csv"
started="$(date +%s)"
while running; do
    sleep 10
    now="$(date +%s)"
    kill -0 "$proxy_pid" 2>/dev/null || { echo "proxy: exited during the soak" >>"$errors"; break; }
    heap="$(curl -s "http://127.0.0.1:$metrics_port/metrics" | awk '/^pgproxy_gc_heap_bytes/ {printf "%.1f", $2 / 1048576}')"
    # pgbench -l lines: client, transaction, latency in us, script, epoch seconds, us.
    lat="$(cat "$work"/lat-*.* 2>/dev/null | awk -v from=$((now - 10)) '$5 >= from {print $3 / 1000}' | sort -g \
        | awk '{a[NR] = $1} END {if (NR == 0) {print "nan,nan,nan,0"} else {printf "%.2f,%.2f,%.2f,%d", a[int(NR * 0.5) + 1], a[int(NR * 0.95) + 1], a[int(NR * 0.99) + 1], NR}}')"
    row="$((now - started)),$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$proxy_pid/status"),${heap:-nan},$(fd_count "$proxy_pid"),$(thread_count "$proxy_pid"),$lat"
    echo "$row" >>"$csv"
    say "$row"
done
say "stopping the workload"
for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
pids=("$proxy_pid")
for mode in simple extended prepared tls; do check_pgbench "$work/pgbench-$mode.txt" >>"$errors" || true; done

# Back to idle within 10 s: descriptors and threads.
back=no
for i in $(seq 1 20); do
    if kill -0 "$proxy_pid" 2>/dev/null && (( $(io_fd_count "$proxy_pid") <= idle_io && $(thread_count "$proxy_pid") <= idle_threads + 2 )); then back=yes; break; fi
    sleep 0.5
done
if [[ "$back" == no ]] && kill -0 "$proxy_pid" 2>/dev/null; then
    say "not back to idle: the proxy's descriptors, by kind, then its TCP connections"
    find "/proc/$proxy_pid/fd" -type l -printf '%l\n' 2>/dev/null | sed 's/:\[.*//' | sort | uniq -c >&2
    ss -tanp 2>/dev/null | grep "pid=$proxy_pid," >&2 || true
fi
end_fd="$(fd_count "$proxy_pid" 2>/dev/null || echo gone)"; end_io="$(io_fd_count "$proxy_pid" 2>/dev/null || echo gone)"; end_threads="$(thread_count "$proxy_pid" 2>/dev/null || echo gone)"
grep -E 'Unhandled|crit:|fail:' "$work/pgproxy.log" | sed 's/^/pgproxy log: /' >>"$errors" || true
transactions="$(awk '/^number of transactions actually processed/ {s += $6} END {print s + 0}' "$work"/pgbench-*.txt)"
reloads="$(curl -s "http://127.0.0.1:$metrics_port/metrics" | awk '/^pgproxy_reloads_total/ && /ok/ {print $2}')"

if command -v gnuplot >/dev/null; then
    gnuplot <<GP || say "gnuplot failed: no chart"
set terminal pngcairo size 900,600 font ",9" noenhanced
set output "$out/soak.png"
set datafile separator ","
set key autotitle columnhead outside right
set multiplot layout 2,1 title "PgProxy soak, ${duration} s, $(date -u +%Y-%m-%d)"
set ylabel "MB"; set y2label "count"; set y2tics; set ytics nomirror
plot "$csv" using 1:2 with lines lw 2, "" using 1:3 with lines lw 2, "" using 1:4 axes x1y2 with lines, "" using 1:5 axes x1y2 with lines
unset y2tics; unset y2label; set ylabel "ms"; set xlabel "seconds"
plot "$csv" using 1:6 with lines, "" using 1:7 with lines, "" using 1:8 with lines
unset multiplot
GP
fi

# The assertions, over the samples after the warm-up.
warmup=$(( duration / 3 < 300 ? duration / 3 : 300 ))
verdict="$(awk -F, -v w="$warmup" 'NR > 1 && $1 > w {n++; rss[n] = $2; fd[n] = $4; th[n] = $5}
    END {
        if (n < 3) {print "FAIL too few samples after the warm-up (" n ")"; exit}
        lo = rss[1]; hi = rss[1]; for (i = 1; i <= n; i++) {if (rss[i] < lo) lo = rss[i]; if (rss[i] > hi) hi = rss[i]}
        third = int(n / 3); if (third < 1) third = 1
        for (i = 1; i <= third; i++) {f1 += fd[i]; t1 += th[i]}; for (i = n - third + 1; i <= n; i++) {f3 += fd[i]; t3 += th[i]}
        f1 /= third; f3 /= third; t1 /= third; t3 /= third
        ok = (lo >= rss[1] * 0.9 && hi <= rss[1] * 1.1) && (f3 <= f1 * 1.1 + 5) && (t3 <= t1 * 1.1 + 5)
        printf "%s RSS after warm-up %.1f MB, range %.1f to %.1f MB (%+.1f%% to %+.1f%%); descriptors mean %.0f then %.0f; threads mean %.0f then %.0f\n",
            ok ? "PASS" : "FAIL", rss[1], lo, hi, (lo / rss[1] - 1) * 100, (hi / rss[1] - 1) * 100, f1, f3, t1, t3
    }' "$csv")"
error_count="$(wc -l <"$errors")"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
    echo "command: bench/soak.sh $duration (warm-up $warmup s)"
    echo "transactions: $transactions (pgbench, all modes); SIGHUPs sent: $(wc -l <"$work/reloads.txt" 2>/dev/null || echo 0), reloads applied (metrics): ${reloads:-?}"
    echo "$verdict"
    echo "after the end: descriptors $end_fd (idle $idle_fd), of them sockets, pipes and the like $end_io (idle $idle_io), threads $end_threads (idle $idle_threads): back within 10 s: $back"
    echo "unexpected errors: $error_count"
    head -n 20 "$errors"
} | tee "$out/soak-summary.txt"
[[ "$verdict" == PASS* && "$back" == yes && "$error_count" -eq 0 ]] || { echo "soak: FAIL"; exit 1; }
echo "soak: PASS"
