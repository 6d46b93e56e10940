#!/usr/bin/env bash
# A multi-host lab on one Linux machine: each node runs a real circuitmesh
# daemon in its own network namespace, and namespaces are joined by veth
# pairs (one /30 per link), so links cross real kernel networking.
#
# Topology: a diamond with a tail, a–{b,c}–d–e, like `circuitmesh demo`.
#
#   sudo deploy/lab/netns.sh up      # build, create namespaces, start daemons
#   sudo deploy/lab/netns.sh check   # peers at a, ping e, fail a relay, ping again
#   sudo deploy/lab/netns.sh down    # stop daemons, delete namespaces
#
# Optional: DELAY=5ms to add that delay on every veth (needs tc/netem).
#
# Gossip mode: MODE=gossip (N=20 nodes by default) puts every node on one
# bridged LAN with no static links; each joins the first by gossip, and
# discovery alone must build the mesh. `check` then asserts, by name, that
# every node lists every other as reachable (`peers`), that the first node
# pings every other and every other pings it (`ping`), and, with
# MAX_LINKS set, that no node holds more links; it prints the time from
# `up` to full reachability. MAX_LINKS and TARGET_LINKS are passed to
# every node as --max-links and --target-links; TIMEOUT (default 120 s)
# bounds the wait.
#
#   sudo MODE=gossip N=24 deploy/lab/netns.sh up
#   sudo MODE=gossip N=24 deploy/lab/netns.sh check
#   sudo MODE=gossip N=24 deploy/lab/netns.sh down
#
# deploy/lab/netns_test.go runs up, check and down in gossip mode with 20
# nodes (as root, without -short).
#
# PREFIX (default cm) starts every namespace and interface name, LAB
# (default /tmp/circuitmesh-lab) holds binaries, identities and logs: two
# labs with different PREFIX and LAB do not collide.
#
# Requires root, iproute2 and network-namespace support.
set -euo pipefail

LAB=${LAB:-/tmp/circuitmesh-lab}
PREFIX=${PREFIX:-cm}
MODE=${MODE:-static}
NODES=(a b c d e)
LINKS=("a b" "a c" "b d" "c d" "d e")
if [ "$MODE" = gossip ]; then
	NODES=()
	for i in $(seq "${N:-20}"); do NODES+=("n$i"); done
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$LAB/circuitmesh"

die() { echo "netns.sh: $*" >&2; exit 1; }

preflight() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and veth pairs need CAP_NET_ADMIN)"
	command -v ip >/dev/null || die "iproute2 ('ip') is missing; install it (apt-get install iproute2)"
	if ! ip netns add "${PREFIX}-probe" 2>/dev/null; then
		die "cannot create network namespaces here (a container without CAP_NET_ADMIN/CAP_SYS_ADMIN?); run on a VM or host"
	fi
	ip netns del "${PREFIX}-probe"
}

ns() { echo "${PREFIX}-$1"; }
cm() { "$BIN" "$@"; }

# addr I A B: the address of node A on the I-th link (A–B).
addr() {
	local i=$1 a=$2 b=$3 host
	if [[ "$a" < "$b" ]]; then host=1; else host=2; fi
	echo "10.77.$i.$host"
}

up() {
	preflight
	mkdir -p "$LAB"
	echo "building circuitmesh into $BIN"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/circuitmesh)
	for n in "${NODES[@]}"; do
		ip netns add "$(ns "$n")"
		ip -n "$(ns "$n")" link set lo up
		[ -f "$LAB/$n/node.crt" ] || cm init --name "$n" --data-dir "$LAB/$n" --mesh lab >/dev/null
	done
	local i=0
	for l in "${LINKS[@]}"; do
		set -- $l
		i=$((i + 1))
		ip link add "$PREFIX$i$1" netns "$(ns "$1")" type veth peer name "$PREFIX$i$2" netns "$(ns "$2")"
		ip -n "$(ns "$1")" addr add "$(addr $i "$1" "$2")/30" dev "$PREFIX$i$1"
		ip -n "$(ns "$2")" addr add "$(addr $i "$2" "$1")/30" dev "$PREFIX$i$2"
		ip -n "$(ns "$1")" link set "$PREFIX$i$1" up
		ip -n "$(ns "$2")" link set "$PREFIX$i$2" up
		if [ -n "${DELAY:-}" ]; then
			ip netns exec "$(ns "$1")" tc qdisc add dev "$PREFIX$i$1" root netem delay "$DELAY"
			ip netns exec "$(ns "$2")" tc qdisc add dev "$PREFIX$i$2" root netem delay "$DELAY"
		fi
	done
	# Each node listens on all its addresses; the lexically larger end of a
	# link dials the smaller one.
	for n in "${NODES[@]}"; do
		local args=() i=0
		for l in "${LINKS[@]}"; do
			set -- $l
			i=$((i + 1))
			[ "$2" = "$n" ] && args+=(--link "$(addr $i "$1" "$2"):4242")
		done
		ip netns exec "$(ns "$n")" "$BIN" run --data-dir "$LAB/$n" --listen 0.0.0.0:4242 "${args[@]}" \
			>"$LAB/$n.log" 2>&1 &
		echo $! >"$LAB/$n.pid"
		echo "started $n in namespace $(ns "$n") (log $LAB/$n.log)"
	done
	echo "waiting for a to reach e"
	for _ in $(seq 100); do
		if cm peers --data-dir "$LAB/a" --json 2>/dev/null | grep -q '"name": "e"'; then
			cm peers --data-dir "$LAB/a"
			return 0
		fi
		sleep 0.2
	done
	die "a never reached e; see $LAB/*.log"
}

# gossip_up: one bridge namespace, every node on 10.78.0.0/16, gossip only.
gossip_up() {
	preflight
	mkdir -p "$LAB"
	echo "building circuitmesh into $BIN"
	(cd "$ROOT" && go build -o "$BIN" ./cmd/circuitmesh)
	[ -f "$LAB/ca/ca.crt" ] || cm ca init --dir "$LAB/ca" --mesh lab >/dev/null
	[ -f "$LAB/gossip.key" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$LAB/gossip.key")
	local bounds=()
	[ -z "${MAX_LINKS:-}" ] || bounds+=(--max-links "$MAX_LINKS")
	[ -z "${TARGET_LINKS:-}" ] || bounds+=(--target-links "$TARGET_LINKS")
	ip netns add "$(ns br)"
	ip -n "$(ns br)" link add br0 type bridge
	ip -n "$(ns br)" link set br0 up
	date +%s.%N >"$LAB/started"
	local i=0
	for n in "${NODES[@]}"; do
		i=$((i + 1))
		ip netns add "$(ns "$n")"
		ip -n "$(ns "$n")" link set lo up
		ip link add "${PREFIX}g$i" netns "$(ns "$n")" type veth peer name "${PREFIX}b$i" netns "$(ns br)"
		ip -n "$(ns "$n")" addr add "10.78.$((i / 250)).$((i % 250 + 1))/16" dev "${PREFIX}g$i"
		ip -n "$(ns "$n")" link set "${PREFIX}g$i" up
		ip -n "$(ns br)" link set "${PREFIX}b$i" master br0 up
		[ -f "$LAB/$n/node.crt" ] || cm cert issue "$n" --ca-dir "$LAB/ca" --out "$LAB/$n" >/dev/null
		local ip="10.78.$((i / 250)).$((i % 250 + 1))"
		ip netns exec "$(ns "$n")" "$BIN" run --data-dir "$LAB/$n" --listen "$ip:4242" \
			--gossip "$ip:7946" --join 10.78.0.2:7946 --gossip-key-file "$LAB/gossip.key" "${bounds[@]}" \
			>"$LAB/$n.log" 2>&1 &
		echo $! >"$LAB/$n.pid"
	done
	echo "started ${#NODES[@]} nodes with gossip only in $(awk -v s="$(cat "$LAB/started")" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s (logs in $LAB)"
}

# reachable_names N: the peers node N's routing reaches, one name a line.
reachable_names() {
	cm peers --data-dir "$LAB/$1" --json 2>/dev/null | tr -d ' \n\t' |
		grep -o '"name":"[^"]*","reachable":true' | cut -d'"' -f4
}

# gossip_check: every node reaches every other by name within TIMEOUT,
# and answers at least one of 3 pings (links may still be rebalancing).
gossip_check() {
	local want=$((${#NODES[@]} - 1)) timeout=${TIMEOUT:-120} start=$SECONDS
	for n in "${NODES[@]}"; do
		while :; do
			local names missing=()
			names=$(reachable_names "$n")
			for m in "${NODES[@]}"; do
				[ "$m" = "$n" ] || grep -qx "$m" <<<"$names" || missing+=("$m")
			done
			[ ${#missing[@]} -eq 0 ] && break
			[ $((SECONDS - start)) -lt "$timeout" ] ||
				die "$n does not reach ${missing[*]} (${#missing[@]} of $want) after $timeout s; see $LAB/$n.log"
			sleep 0.5
		done
	done
	local took
	took=$(awk -v s="$(cat "$LAB/started")" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	echo "every node lists every other of ${#NODES[@]} as reachable: $took s after up started"
	local first=${NODES[0]} failed=0
	for m in "${NODES[@]:1}"; do
		cm ping "$m" -c 3 -i 200ms --data-dir "$LAB/$first" >/dev/null 2>&1 || { echo "$first cannot ping $m" >&2; failed=1; }
		cm ping "$first" -c 3 -i 200ms --data-dir "$LAB/$m" >/dev/null 2>&1 || { echo "$m cannot ping $first" >&2; failed=1; }
	done
	[ "$failed" -eq 0 ] || die "pings failed"
	echo "$first pings every other node by name and every other pings it"
	local maxdeg=0 sum=0
	for n in "${NODES[@]}"; do
		local d
		d=$(cm links --data-dir "$LAB/$n" --json 2>/dev/null | grep -c '"peer"' || true)
		sum=$((sum + d))
		[ "$d" -gt "$maxdeg" ] && maxdeg=$d
	done
	if [ -n "${MAX_LINKS:-}" ] && [ "$maxdeg" -gt "$MAX_LINKS" ]; then
		die "a node holds $maxdeg links, above --max-links $MAX_LINKS"
	fi
	echo "links: max $maxdeg on a node${MAX_LINKS:+ (bound $MAX_LINKS)}, $((sum / 2)) in all"
}

check() {
	cm peers --data-dir "$LAB/a"
	cm ping e -c 3 --data-dir "$LAB/a"
	local relay
	relay=$(cm routes --data-dir "$LAB/a" | awk '$1 == "e" {print $2}')
	echo "stopping relay $relay"
	kill -9 "$(cat "$LAB/$relay.pid")"
	sleep 2
	cm ping e -c 3 --data-dir "$LAB/a"
}

down() {
	for n in "${NODES[@]}"; do
		if [ -f "$LAB/$n.pid" ]; then
			kill "$(cat "$LAB/$n.pid")" 2>/dev/null || true
			rm -f "$LAB/$n.pid"
		fi
		ip netns del "$(ns "$n")" 2>/dev/null || true
	done
	ip netns del "$(ns br)" 2>/dev/null || true
	echo "lab stopped (identities kept in $LAB)"
}

case "${1:-}" in
up) if [ "$MODE" = gossip ]; then gossip_up; else up; fi ;;
check) if [ "$MODE" = gossip ]; then gossip_check; else check; fi ;;
down) down ;;
*) echo "usage: $0 up|check|down" >&2; exit 2 ;;
esac
