#!/usr/bin/env bash
# Runs the same workloads against clacksd (Clacks protocol and its memcached listener), Redis, memcached (and the Perl reference server if
# --perl LIBDIR is given), each server pinned to CPU 0 and the load generator to CPU 1, three
# times each; prints a table of medians and ratios and writes bench/results/ (JSON per run,
# summary.json, summary.md, chart.png).
#
#   bench/compare.sh [--perl /path/to/lib] [--duration SECONDS] [--connections N] [--runs N]
#                    [--only "fanout cache connections queue journal"]   (re-run some workloads, keep the rest)
#                    [--out DIR]   (results somewhere else than bench/results, e.g. for a trial run)
set -euo pipefail
cd "$(dirname "$0")/.."

PERL_LIB=""
DURATION=5
CONNS=10000
RUNS=3
ONLY="fanout cache connections queue journal"
OUT=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --perl) PERL_LIB="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v memcached >/dev/null || need+=(memcached)
command -v taskset >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked -q -p clacksd -p clacks-bench

ulimit -n 65536 || ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d)
RUNDIR=$OUT/runs
mkdir -p "$RUNDIR"
for w in $ONLY; do rm -f "$RUNDIR"/"$w"*.json; done
[[ " $ONLY " == *" fanout "* ]] && rm -f "$RUNDIR"/latency*.json
wants() { [[ " $ONLY " == *" $1 "* ]]; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "$1 did not appear" >&2; exit 1; }

# clacksd: one worker thread, no persistence, Unix socket + TLS.
openssl req -new -newkey rsa:2048 -x509 -sha256 -days 2 -nodes -subj /CN=localhost \
  -out "$WORK/cert.pem" -keyout "$WORK/key.pem" 2>/dev/null
cat > "$WORK/clacksd.xml" <<XML
<clacks>
  <ip>127.0.0.1</ip><port>49901</port>
  <ssl><cert>$WORK/cert.pem</cert><key>$WORK/key.pem</key></ssl>
  <socket>$WORK/clacksd.sock</socket>
  <username>bench</username><password>bench</password>
  <maxconnections>20000</maxconnections>
  <workerthreads>1</workerthreads>
  <memcached><socket>$WORK/clacksd-memcached.sock</socket></memcached>
</clacks>
XML
taskset -c 0 target/release/clacksd --config "$WORK/clacksd.xml" >"$WORK/clacksd.log" 2>&1 &
CLACKSD=$!; PIDS+=("$CLACKSD")
taskset -c 0 redis-server --port 6399 --bind 127.0.0.1 --unixsocket "$WORK/redis.sock" --save '' \
  --appendonly no --io-threads 1 --maxclients 20000 >"$WORK/redis.log" 2>&1 &
REDIS=$!; PIDS+=("$REDIS")
taskset -c 0 memcached -t 1 -u "$(id -un)" -s "$WORK/memcached.sock" -c 20000 -m 1024 >"$WORK/memcached.log" 2>&1 &
MEMCACHED=$!; PIDS+=("$MEMCACHED")
PERL=""
if [ -n "$PERL_LIB" ]; then
  cat > "$WORK/perl.xml" <<XML
<clacks>
  <socket>$WORK/perl.sock</socket>
  <username>bench</username><password>bench</password>
  <pingtimeout>600</pingtimeout>
  <throttle><maxsleep>50</maxsleep><step>10</step></throttle>
</clacks>
XML
  (cd "$WORK" && exec taskset -c 0 perl -I"$PERL_LIB" -MNet::Clacks::Server -e 'Net::Clacks::Server->new(0, "perl.xml")->run()' >perl.log 2>&1) &
  PERL=$!; PIDS+=("$PERL")   # the subshell execs taskset, which execs perl: one PID
fi
wait_for "$WORK/clacksd.sock"; wait_for "$WORK/redis.sock"; wait_for "$WORK/memcached.sock"
if [ -n "$PERL" ]; then wait_for "$WORK/perl.sock"; fi
sleep 1

bench() { # label pid proto target args...
  local label=$1 pid=$2 proto=$3 target=$4; shift 4
  for i in $(seq 1 "$RUNS"); do
    taskset -c 1 target/release/clacks-bench --quiet --proto "$proto" --target "$target" \
      --user bench --password bench --server-pid "$pid" --duration "$DURATION" \
      --label "$label-$i" --json-dir "$RUNDIR" "$@" >/dev/null
    echo "  $label run $i done" >&2
  done
}

C_UNIX="unix:$WORK/clacksd.sock"; C_TLS="tls:127.0.0.1:49901"
R_UNIX="unix:$WORK/redis.sock"; R_TCP="tcp:127.0.0.1:6399"; M_UNIX="unix:$WORK/memcached.sock"
CM_UNIX="unix:$WORK/clacksd-memcached.sock"
if wants fanout; then
for n in 10 100; do
  bench "fanout$n.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" fanout --listeners "$n"
  bench "fanout$n.clacksd-tls" "$CLACKSD" clacks "$C_TLS" fanout --listeners "$n"
  bench "fanout$n.redis-unix" "$REDIS" redis "$R_UNIX" fanout --listeners "$n"
  bench "fanout$n.redis-tcp" "$REDIS" redis "$R_TCP" fanout --listeners "$n"
  if [ -n "$PERL" ]; then bench "fanout$n.perl-unix" "$PERL" clacks "unix:$WORK/perl.sock" fanout --listeners "$n"; fi
done
bench "latency200k.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" fanout --listeners 100 --rate 2000
bench "latency200k.redis-unix" "$REDIS" redis "$R_UNIX" fanout --listeners 100 --rate 2000
fi
if wants cache; then
for p in 1 16; do
  bench "cache-p$p.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" cache --pipeline "$p"
  bench "cache-p$p.clacksd-memcached-unix" "$CLACKSD" memcached "$CM_UNIX" cache --pipeline "$p"
  bench "cache-p$p.redis-unix" "$REDIS" redis "$R_UNIX" cache --pipeline "$p"
  bench "cache-p$p.memcached-unix" "$MEMCACHED" memcached "$M_UNIX" cache --pipeline "$p"
  if [ -n "$PERL" ]; then bench "cache-p$p.perl-unix" "$PERL" clacks "unix:$WORK/perl.sock" cache --pipeline "$p"; fi
done
fi
# Work queues: one producer, 4 competing consumers, 32-byte messages; at most once (Clacks
# QSEND/QRECV, Redis LPUSH/BRPOP) and acknowledged (Clacks QRECV with a lease + QACK, Redis
# streams XADD/XREADGROUP/XACK). First as fast as a window of 256 messages in flight allows
# (throughput), then at 50,000 messages/s, which both servers sustain (CPU per message and
# latency at the same load).
if wants queue; then
for m in once acked; do
  bench "queue-$m.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" queue --mode "$m"
  bench "queue-$m.redis-unix" "$REDIS" redis "$R_UNIX" queue --mode "$m"
  bench "queue-$m-50k.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" queue --mode "$m" --rate 50000
  bench "queue-$m-50k.redis-unix" "$REDIS" redis "$R_UNIX" queue --mode "$m" --rate 50000
done
fi
# Acknowledged writes with every change synced to disk before it is acknowledged: clacksd with
# <journal><fsync>always (a STORE then FLUSH, waiting for FLUSHED) against Redis with
# appendonly yes, appendfsync always (SET, waiting for +OK); 1, 10 and 50 writers, each with
# one write in flight. Both write to the same file system, in the work directory.
if wants journal; then
  mkdir -p "$WORK/journal-clacksd" "$WORK/journal-redis"
  cat > "$WORK/clacksd-journal.xml" <<XML
<clacks>
  <socket>$WORK/clacksd-journal.sock</socket>
  <username>bench</username><password>bench</password>
  <workerthreads>1</workerthreads>
  <persistancefile>$WORK/journal-clacksd/cache.dat</persistancefile>
  <journal><file>$WORK/journal-clacksd/journal</file><fsync>always</fsync></journal>
</clacks>
XML
  taskset -c 0 target/release/clacksd --config "$WORK/clacksd-journal.xml" >"$WORK/clacksd-journal.log" 2>&1 &
  CLACKSD_J=$!; PIDS+=("$CLACKSD_J")
  taskset -c 0 redis-server --port 0 --unixsocket "$WORK/redis-journal.sock" --save '' \
    --appendonly yes --appendfsync always --dir "$WORK/journal-redis" --io-threads 1 \
    >"$WORK/redis-journal.log" 2>&1 &
  REDIS_J=$!; PIDS+=("$REDIS_J")
  wait_for "$WORK/clacksd-journal.sock"; wait_for "$WORK/redis-journal.sock"
  for n in 1 10 50; do
    bench "journal-w$n.clacksd-unix" "$CLACKSD_J" clacks "unix:$WORK/clacksd-journal.sock" cache --connections "$n" --get-ratio 0 --keys 1000
    bench "journal-w$n.redis-unix" "$REDIS_J" redis "unix:$WORK/redis-journal.sock" cache --connections "$n" --get-ratio 0 --keys 1000
  done
fi
# Memory is measured on a fresh clacksd for every run: memory freed by an earlier run stays in the
# process's RSS and would hide the cost of the next connections.
fresh_clacksd() {
  kill "$CLACKSD"; wait "$CLACKSD" 2>/dev/null || true
  rm -f "$WORK/clacksd.sock"
  taskset -c 0 target/release/clacksd --config "$WORK/clacksd.xml" >>"$WORK/clacksd.log" 2>&1 &
  CLACKSD=$!; PIDS+=("$CLACKSD"); wait_for "$WORK/clacksd.sock"; sleep 0.5
}
if wants connections; then
  for i in $(seq 1 "$RUNS"); do
    fresh_clacksd
    RUNS=1 bench "connections.clacksd-unix" "$CLACKSD" clacks "$C_UNIX" connections --count "$CONNS"
    mv "$RUNDIR/connections.clacksd-unix-1.json" "$RUNDIR/connections.clacksd-unix-r$i.json"
    fresh_clacksd
    RUNS=1 bench "connections.clacksd-tls" "$CLACKSD" clacks "$C_TLS" connections --count "$CONNS"
    mv "$RUNDIR/connections.clacksd-tls-1.json" "$RUNDIR/connections.clacksd-tls-r$i.json"
  done
  bench "connections.redis-unix" "$REDIS" redis "$R_UNIX" connections --count "$CONNS"
  bench "connections.memcached-unix" "$MEMCACHED" memcached "$M_UNIX" connections --count "$CONNS"
  if [ -n "$PERL" ]; then bench "connections.perl-unix" "$PERL" clacks "unix:$WORK/perl.sock" connections --count 200; fi
fi

python3 bench/summarize.py "$RUNDIR" "$OUT"
