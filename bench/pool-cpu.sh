#!/usr/bin/env bash
# Proxy CPU per transaction in transaction pooling (perf stat -p: task-clock and context switches, divided by
# pgbench's transactions), for one or two PgProxy builds beside PgBouncer 1.18, all with a pool of 20 and md5 logins:
#   c1000  pgbench -S -c 1000 -j 2 (every transaction ends with a hand-off to a waiting client)
#   C      pgbench -S -C -c 16 -j 2 (a new connection per transaction)
#
#   BUILDS="A B" bench/pool-cpu.sh      # /tmp/buildA and /tmp/buildB: copies of src/PgProxy/bin/Release/net10.0
#   ROWS=c1000 DUR=8 bench/pool-cpu.sh
set -euo pipefail
source /work/main/scripts/lib/postgres.sh
source /work/main/bench/lib/bench-server.sh
ulimit -n "$(ulimit -Hn)"
pg_bin="$(newest_pg_bin)"
work="$(bench_work pool)"
trap 'kill ${pids:-} 2>/dev/null; as_postgres "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1; rm -rf "$work"' EXIT
bench_initdb
printf 'local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 md5\n' > $work/data/pg_hba.conf
pg_port=$(free_port); bench_start_postgres $pg_port 300
"$pg_bin/psql" -h 127.0.0.1 -p $pg_port -U postgres -qc "SET password_encryption='md5'; CREATE ROLE bench LOGIN PASSWORD 'bench'; GRANT ALL ON SCHEMA public TO bench" postgres
PGUSER=bench PGPASSWORD=bench "$pg_bin/pgbench" -h 127.0.0.1 -p $pg_port -i -s 5 postgres >/dev/null 2>&1
verifier=$("$pg_bin/psql" -h 127.0.0.1 -p $pg_port -U postgres -Atc "select rolpassword from pg_authid where rolname='bench'" postgres)
echo "\"bench\" \"$verifier\"" > $work/users.txt
pids=""
ports=()
for b in ${BUILDS:-A B}; do
  port=$(free_port)
  cat > $work/$b.yml <<Y
stats: { queries: false }
settings: { log-level: warning }
instances:
  - listen: { name: p, host: 127.0.0.1, port: $port }
    redirect: { name: postgresql, host: 127.0.0.1, port: $pg_port, tls: { mode: disable } }
    auth: { auth-file: $work/users.txt }
    pool: { mode: transaction, size: 20 }
    limits: { max-connections: 5000 }
Y
  dotnet /tmp/build$b/pgproxy.dll --config $work/$b.yml > $work/$b.log 2>&1 &
  eval "pid_$b=$!"; pids="$pids $!"; eval "port_$b=$port"
done
bport=$(free_port)
cat > $work/pgb.ini <<I
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
auth_type = md5
auth_file = $work/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 5000
unix_socket_dir =
logfile = $work/pgb.log
I
chown postgres $work/pgb.ini $work/users.txt; touch $work/pgb.log; chown postgres $work/pgb.log
su postgres -c "ulimit -n 4096; pgbouncer $work/pgb.ini" > /dev/null 2>&1 & 
sleep 1; pid_bouncer=$(pgrep -u postgres -x pgbouncer | head -1); pids="$pids $pid_bouncer"; port_bouncer=$bport
sleep 2
export PGUSER=bench PGPASSWORD=bench
for row in ${ROWS:-c1000 C}; do
for round in 1 2; do
for t in ${BUILDS:-A B} bouncer; do
  eval "port=\$port_$t; pid=\$pid_$t"
  if [[ $row == c1000 ]]; then args="-S -c 1000 -j 2"; else args="-S -C -c 16 -j 2"; fi
  "$pg_bin/pgbench" -h 127.0.0.1 -p $port $args -T 3 postgres >/dev/null 2>&1 || true
  kill -0 $pid || { echo "$t is gone"; tail -5 $work/$t.log; exit 1; }
  perf stat -e task-clock,context-switches -p $pid -o $work/perf.txt -- sleep ${DUR:-8} &
  ps=$!
  out=$("$pg_bin/pgbench" -h 127.0.0.1 -p $port $args -T ${DUR:-8} postgres 2>&1 || true)
  wait $ps
  tx=$(grep -oP 'number of transactions actually processed: \K\d+' <<<"$out" || echo 0)
  ms=$(grep -oP '^\s*\K[\d.,]+(?= msec task-clock)' $work/perf.txt | tr -d ,)
  cs=$(grep -oP '^\s*\K[\d,]+(?= +context-switches)' $work/perf.txt | tr -d ,)
  tps=$(grep -oP 'tps = \K[\d.]+' <<<"$out" | head -1 || echo 0)
  echo "$row $t round $round: tps ${tps:-0}, us/tx $(python3 -c "print(round($ms*1000/max($tx,1),2))"), cs/tx $(python3 -c "print(round($cs/max($tx,1),3))")"
done; done; done
