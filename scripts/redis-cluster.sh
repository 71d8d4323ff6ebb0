#!/usr/bin/env bash
# A local Redis Cluster for tests, CI and benchmarks: six redis-server processes on 127.0.0.1
# (ports BASE..BASE+5, cluster bus ports BASE+10000..BASE+10005) joined as 3 masters + 3 replicas.
# Needs redis-server and redis-cli (7.x) on PATH; no Docker.
#
#   scripts/redis-cluster.sh start  [BASE_PORT]   start (idempotent) and wait until the cluster is ok
#   scripts/redis-cluster.sh stop   [BASE_PORT]   shut the nodes down and remove their directory
#   scripts/redis-cluster.sh status [BASE_PORT]   one line per node; exit 0 only if every node is ok
#
# BASE_PORT defaults to 7001. The nodes live in /tmp/redis-cluster-BASE; stop only shuts down nodes
# whose working directory is that one, so it never touches a Redis it did not start.
# REDIS_CLUSTER_TIMEOUT (seconds, default 20) bounds each wait. REDIS_CLUSTER_NODE_TIMEOUT (ms, default
# 5000, Redis's own default is 15000) is cluster-node-timeout: nodes gossip at least every half of it,
# so it sets how soon all nodes agree on the roles after the create, and how soon a dead master fails over.
# REDIS_CLUSTER_REPLICAS=0 makes three masters and no replicas (ports BASE..BASE+2): the benchmark's
# like-for-like comparison with one unreplicated Redis. The default, 1, gives each master a replica.
# --repl-diskless-sync-delay 0 lets the replicas take their first sync at once instead of after 5 s.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status [BASE_PORT]" >&2
  exit 2
}

cmd=${1:-}
base=${2:-7001}
[[ $base =~ ^[0-9]+$ ]] && ((base >= 1 && base + 10005 <= 65535)) ||
  {
    echo "redis-cluster: bad base port '$base' (ports BASE..BASE+5 and BASE+10000..BASE+10005 must be valid)" >&2
    exit 2
  }
host=127.0.0.1
# The physical path (on macOS /tmp is a symlink), as the nodes report it in CONFIG GET dir.
dir=$(cd /tmp && pwd -P)/redis-cluster-$base
timeout_s=${REDIS_CLUSTER_TIMEOUT:-20}
node_timeout_ms=${REDIS_CLUSTER_NODE_TIMEOUT:-5000}
replicas=${REDIS_CLUSTER_REPLICAS:-1}
[[ $replicas == 0 || $replicas == 1 ]] || {
  echo "redis-cluster: REDIS_CLUSTER_REPLICAS must be 0 or 1, got '$replicas'" >&2
  exit 2
}
count=$((3 * (1 + replicas)))
ports=()
for ((i = 0; i < count; i++)); do ports+=($((base + i))); done
node_list=$(printf "$host:%s," "${ports[@]}")
node_list=${node_list%,}

# redis-cli against one node, bounded in time (where coreutils timeout exists), quiet on errors;
# the reply on stdout without \r.
bounded=()
if command -v timeout >/dev/null; then bounded=(timeout 3); fi
cli() {
  local port=$1
  shift
  "${bounded[@]}" redis-cli -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r'
}

# Whether the node on $1 answers and runs in our directory.
ours() {
  local reply
  reply=$(cli "$1" config get dir) || return 1
  [[ $reply == "dir"$'\n'"$dir" ]]
}

# Whether the node on $1 answers at all.
answers() {
  [[ $(cli "$1" ping || true) == PONG ]]
}

# Whether the node on $1 sees a healthy cluster: state ok, all slots served, every node known,
# three masters with slots and a replica each (none with REDIS_CLUSTER_REPLICAS=0), no node failing or still in handshake; and, on a
# replica, that its first sync with its master is done.
node_ok() {
  local info nodes
  info=$(cli "$1" info replication) || return 1
  [[ $info != *"role:slave"* || $info == *"master_link_status:up"* ]] || return 1
  info=$(cli "$1" cluster info) || return 1
  [[ $info == *"cluster_state:ok"* && $info == *"cluster_slots_ok:16384"* ]] || return 1
  [[ $info == *"cluster_known_nodes:$count"* && $info == *"cluster_size:3"* ]] || return 1
  nodes=$(cli "$1" cluster nodes) || return 1
  awk -v count="$count" -v want="$((3 * replicas))" '
    NF == 0 { next }
    { total++ }
    $3 ~ /fail|handshake|noaddr/ { bad++ }
    $3 ~ /master/ { if (NF >= 9) masters++; else bad++ }
    $3 ~ /slave/ { replicas++ }
    END { exit !(total == count && masters == 3 && replicas + 0 == want && bad == 0) }
  ' <<<"$nodes"
}

cluster_ok() {
  local p
  lagging=()
  for p in "${ports[@]}"; do node_ok "$p" || lagging+=("$p"); done
  ((${#lagging[@]} == 0))
}

# Shuts down every node of ours (SHUTDOWN NOSAVE, then SIGTERM from our pid file if it lingers),
# waits until the processes are gone and removes the directory. Sets stopped to how many it shut down.
stopped=0
stop_nodes() {
  local quiet=${1:-} p pid deadline
  stopped=0
  for p in "${ports[@]}"; do
    if ours "$p"; then
      cli "$p" shutdown nosave >/dev/null || true
      stopped=$((stopped + 1))
    elif [[ -z $quiet ]] && answers "$p"; then
      echo "redis-cluster: leaving 127.0.0.1:$p alone: it is not a node of $dir" >&2
    fi
  done
  deadline=$((SECONDS + 10))
  for p in "${ports[@]}"; do
    while [[ -f $dir/redis-$p.pid ]] && pid=$(cat "$dir/redis-$p.pid" 2>/dev/null) &&
      [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS > deadline)); then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 0.5
        break
      fi
      sleep 0.1
    done
  done
  rm -rf "$dir"
}

# Ports that a wait is still waiting for; their logs are shown on failure.
lagging=()

# Reports a failed start with the tail of the relevant logs, cleans up our nodes and exits.
fail() {
  echo "redis-cluster: $*" >&2
  local f p
  local logs=("$dir/create.log")
  ((${#lagging[@]} > 0)) || lagging=("${ports[@]}")
  for p in "${lagging[@]}"; do logs+=("$dir/redis-$p.log"); done
  for f in "${logs[@]}"; do
    [[ -f $f ]] || continue
    echo "---- $f (last lines)" >&2
    grep -v 'overcommit' "$f" | tail -n 6 >&2 || true
  done
  stop_nodes quiet
  exit 1
}

wait_until() { # wait_until WHAT COMMAND...
  local what=$1 deadline=$((SECONDS + timeout_s))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout_s}s waiting for $what (still waiting for ${lagging[*]})"
    sleep 0.2
  done
}

# Whether all the nodes answer from our directory; fails at once if one of them gave up (busy port).
all_ours() {
  local p
  lagging=()
  for p in "${ports[@]}"; do
    ours "$p" && continue
    lagging+=("$p")
    if grep -qs 'aborting' "$dir/redis-$p.log"; then
      fail "redis-server on port $p exited (is port $p or its bus port $((p + 10000)) in use?)"
    fi
  done
  ((${#lagging[@]} == 0))
}

print_nodes() {
  echo "redis cluster ok (3 masters, $((3 * replicas)) replicas): REDIS_CLUSTER_NODES=$node_list"
}

start() {
  command -v redis-server >/dev/null || {
    echo "redis-cluster: redis-server not found on PATH" >&2
    exit 1
  }
  command -v redis-cli >/dev/null || {
    echo "redis-cluster: redis-cli not found on PATH" >&2
    exit 1
  }
  if [[ $(cli "$base" cluster info || true) == *"cluster_state:ok"* ]]; then
    print_nodes
    return 0
  fi
  # Leftovers of an earlier start of ours that never became ok.
  stop_nodes quiet
  local p
  for p in "${ports[@]}"; do
    if answers "$p"; then
      echo "redis-cluster: port $p already has a Redis that is not part of a healthy cluster on $base; not starting" >&2
      exit 1
    fi
  done
  mkdir -p "$dir"
  for p in "${ports[@]}"; do
    redis-server --bind "$host" --port "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf" \
      --cluster-node-timeout "$node_timeout_ms" --save '' --appendonly no --repl-diskless-sync-delay 0 \
      --daemonize yes --dir "$dir" \
      --pidfile "$dir/redis-$p.pid" --logfile "$dir/redis-$p.log" ||
      fail "redis-server on port $p did not start"
  done
  # A daemonized redis-server returns before it binds, so a busy port only shows here.
  wait_until "the $count nodes to answer on $node_list" all_ours
  local args=()
  for p in "${ports[@]}"; do args+=("$host:$p"); done
  local create=(redis-cli --cluster create)
  if ((${#bounded[@]} > 0)); then create=(timeout "$((timeout_s + 10))" "${create[@]}"); fi
  "${create[@]}" "${args[@]}" --cluster-replicas "$replicas" --cluster-yes \
    </dev/null >"$dir/create.log" 2>&1 || fail "redis-cli --cluster create failed"
  wait_until "cluster_state:ok, 3 masters owning all slots and $((3 * replicas)) synced replicas on every node" cluster_ok
  print_nodes
}

status() {
  local p info role state rc=0
  for p in "${ports[@]}"; do
    if ! info=$(cli "$p" cluster info) || [[ -z $info ]]; then
      echo "$host:$p down"
      rc=1
      continue
    fi
    role=$(cli "$p" role | head -n 1)
    state=$(sed -n 's/^cluster_state://p' <<<"$info")
    echo "$host:$p ${role:-?} cluster_state:${state:-?}"
    node_ok "$p" || rc=1
  done
  return $rc
}

case $cmd in
start) start ;;
stop)
  stop_nodes
  echo "redis cluster on $node_list: stopped $stopped node(s) of $dir"
  ;;
status) status ;;
*) usage ;;
esac
