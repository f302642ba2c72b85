#!/usr/bin/env bash
# Re-records the shipped sample traces on this machine, as root, from real
# servers and clients installed from Debian's packages. Each sample directory
# gets its segments and expected.json: the client-side counts (connections,
# requests, bytes) as the clients and servers themselves report them.
#
#   bash samples/record.sh [mariadb-short-connections|mariadb-logins|redis-benchmark|nginx-keepalive|nginx-no-keepalive]...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need=()
for pkg in mariadb-server mariadb-client redis-server redis-tools nginx-light curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
cargo build -q -p netrec-capture
CAPTURE=$ROOT/target/debug/netrec-capture
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# start_capture DIR PORT [FLAGS...]: records everything on PORT into DIR, waits until attached.
start_capture() {
    rm -rf "$1"
    "$CAPTURE" --output "$1" --port "$2" "${@:3}" 2>"$WORK/capture.log" &
    CAPTURE_PID=$!
    for _ in $(seq 100); do grep -q "recording to" "$WORK/capture.log" && return 0; sleep 0.1; done
    cat "$WORK/capture.log" >&2
    return 1
}
stop_capture() {
    sleep 0.5
    kill -INT "$CAPTURE_PID"
    wait "$CAPTURE_PID"
    cat "$WORK/capture.log" >&2
}

mariadb_short_connections() {
    local out=samples/mariadb-short-connections port=33061 n=200
    mariadb-install-db --user=root --datadir="$WORK/mysql" >/dev/null
    mariadbd --user=root --datadir="$WORK/mysql" --port=$port --bind-address=127.0.0.1 \
        --socket="$WORK/mysql.sock" --skip-grant-tables --pid-file="$WORK/mysql.pid" \
        --log-error="$WORK/mysql.err" &
    wait_port $port
    start_capture "$out/segments" $port
    # One connection per query: the short-connection flood.
    for _ in $(seq $n); do
        mariadb -h 127.0.0.1 -P $port -u root -N -e 'SELECT 1' >/dev/null
    done
    stop_capture
    kill "$(cat "$WORK/mysql.pid")"
    wait
    printf '{"server_port": %d, "client_comm": "mariadb", "server_comm": "mariadbd", "connections": %d, "queries": %d}\n' \
        $port $n $n >"$out/expected.json"
}

# The classic diagnosis: a uprobe on login_connection beside the TCP churn.
mariadb_logins() {
    local out=samples/mariadb-logins port=33062 n=150 m=100
    mariadb-install-db --no-defaults --user=root --datadir="$WORK/mysql2" >/dev/null
    mariadbd --no-defaults --user=root --datadir="$WORK/mysql2" --port=$port --bind-address=127.0.0.1 \
        --socket="$WORK/mysql2.sock" --skip-grant-tables --pid-file="$WORK/mysql2.pid" \
        --log-error="$WORK/mysql2.err" &
    wait_port $port
    start_capture "$out/segments" $port \
        --uprobe mariadbd:login_connection --uprobe mariadbd:dispatch_command
    # One long-lived connection running m queries, then a flood of n short ones.
    local queries=""
    for i in $(seq $m); do queries+="SELECT $i; "; done
    mariadb -h 127.0.0.1 -P $port -u root -N -B -e "$queries" >/dev/null
    for _ in $(seq $n); do
        mariadb -h 127.0.0.1 -P $port -u root -N -e 'SELECT 1' >/dev/null
    done
    stop_capture
    local server_pid
    server_pid=$(cat "$WORK/mysql2.pid")
    kill "$server_pid"
    wait
    printf '{"server_port": %d, "server_pid": %d, "client_comm": "mariadb", "server_comm": "mariadbd", "connections": %d, "logins": %d, "queries": %d}\n' \
        $port "$server_pid" $((n + 1)) $((n + 1)) $((n + m)) >"$out/expected.json"
}

redis_benchmark() {
    local out=samples/redis-benchmark port=63791 requests=20000 clients=20
    redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$WORK/redis.log" &
    wait_port $port
    python3 tests/workloads/redis_stats.py $port >"$WORK/before.json"
    start_capture "$out/segments" $port
    redis-benchmark -p $port -n $requests -c $clients -t set,get -q >"$WORK/bench.txt"
    stop_capture
    python3 tests/workloads/redis_stats.py $port >"$WORK/after.json"
    redis-cli -p $port shutdown nosave >/dev/null || true
    wait
    python3 - "$WORK/before.json" "$WORK/after.json" "$WORK/bench.txt" $port $requests $clients >"$out/expected.json" <<'EOF'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
bench = open(sys.argv[3]).read().replace("\r", "\n")
port, requests, clients = map(int, sys.argv[4:7])
# redis-server's own counters, less the stats probes themselves (see redis_stats.py).
print(json.dumps({
    "server_port": port, "client_comm": "redis-benchmark", "server_comm": "redis-server",
    "requests_per_test": requests, "tests": ["SET", "GET"], "clients": clients,
    "connections": after["connections"] - before["connections"] - 1,
    "server_recv_bytes": after["input_bytes"] - before["input_bytes"] - after["request_bytes"],
    "server_sent_bytes": after["output_bytes"] - before["output_bytes"] - before["reply_bytes"],
    "benchmark_output": [l.strip() for l in bench.splitlines() if "requests per second" in l],
}))
EOF
}

nginx_sample() {
    local name=$1 keepalive=$2 out=samples/$1 port=8088 n=100
    mkdir -p "$WORK/www" "$WORK/nginx"
    chmod 755 "$WORK" "$WORK/www"  # nginx workers run as www-data
    head -c 4096 /dev/zero | tr '\0' 'n' >"$WORK/www/page.html"
    chmod 644 "$WORK/www/page.html"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 1000;
    server { listen 127.0.0.1:$port; root $WORK/www; }
}
EOF
    nginx -c "$WORK/nginx/nginx.conf" &
    wait_port $port
    start_capture "$out/segments" $port
    local urls=()
    for _ in $(seq $n); do urls+=("http://127.0.0.1:$port/page.html"); done
    if [ "$keepalive" = yes ]; then
        # One curl process, one connection reused for every request.
        local args=()
        for u in "${urls[@]}"; do args+=(-o /dev/null "$u"); done
        curl -s -w '%{size_header} %{size_download} %{size_request}\n' "${args[@]}" >"$WORK/curl.txt"
    else
        for u in "${urls[@]}"; do
            curl -s -H 'Connection: close' -w '%{size_header} %{size_download} %{size_request}\n' -o /dev/null "$u"
        done >"$WORK/curl.txt"
    fi
    stop_capture
    kill "$(cat "$WORK/nginx/nginx.pid")"
    wait
    python3 - "$WORK/curl.txt" $port $n "$keepalive" >"$out/expected.json" <<'EOF'
import json, sys
lines = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
port, n, keepalive = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "yes"
print(json.dumps({
    "server_port": port, "client_comm": "curl", "server_comm": "nginx",
    "requests": len(lines), "connections": 1 if keepalive else n,
    "client_recv_bytes": sum(h + d for h, d, _ in lines),
    "client_sent_bytes": sum(r for _, _, r in lines),
}))
EOF
}

samples=("$@")
((${#samples[@]})) || samples=(mariadb-short-connections mariadb-logins redis-benchmark nginx-keepalive nginx-no-keepalive)
for s in "${samples[@]}"; do
    echo "== $s"
    case $s in
    mariadb-short-connections) mariadb_short_connections ;;
    mariadb-logins) mariadb_logins ;;
    redis-benchmark) redis_benchmark ;;
    nginx-keepalive) nginx_sample nginx-keepalive yes ;;
    nginx-no-keepalive) nginx_sample nginx-no-keepalive no ;;
    *) echo "unknown sample $s" >&2; exit 2 ;;
    esac
    du -sh "samples/$s"
done
