#!/bin/sh
# capture.sh: regenerate the golden captures in this directory.
# Run as root from this directory: sh capture.sh
# Everything happens in two network namespaces created here and removed on
# exit; nothing is addressed or sent in the root namespace. See README.md.
set -eu
SUF=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
A=sycapa$SUF B=sycapb$SUF VA=syca$SUF VB=sycb$SUF
A4=198.18.0.1 B4=198.18.0.2 A6=fd00:198:18::1 B6=fd00:198:18::2
OUT=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
TCPDUMP_PID= SRV_PID=

cleanup() {
	[ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

inA() { nsenter --net=/run/netns/"$A" "$@"; }
inB() { nsenter --net=/run/netns/"$B" "$@"; }
# Background jobs call nsenter directly, not through inA/inB: nsenter execs
# the command (ip netns exec and a function's subshell fork), so $! is the PID
# of the process we later stop.

# txcsum_off.py IFACE: ETHTOOL_STXCSUM=0 (no ethtool binary here), so captured
# TCP/UDP frames carry complete checksums instead of the partial seed, and
# TSO goes with it, so frames on the wire are at most MTU-sized.
cat >"$TMP/txcsum_off.py" <<'PY'
import ctypes, fcntl, socket, struct, sys
ev = ctypes.create_string_buffer(struct.pack('II', 0x17, 0))  # ETHTOOL_STXCSUM, off
ifr = struct.pack('16sP', sys.argv[1].encode(), ctypes.addressof(ev))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s.fileno(), 0x8946, ifr + bytes(40 - len(ifr)))  # SIOCETHTOOL
PY

# start NAME: capture everything on A's veth into NAME.pcap.
start() {
	nsenter --net=/run/netns/"$A" tcpdump -i "$VA" -s 0 -U --immediate-mode -Z root -w "$OUT/$1.pcap" >/dev/null 2>&1 &
	TCPDUMP_PID=$!
	# tcpdump writes the file header once it is capturing; wait for it.
	i=0
	while [ "$(stat -c %s "$OUT/$1.pcap" 2>/dev/null || echo 0)" -lt 24 ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	sleep 1
}
stop() {
	sleep 1
	kill -TERM "$TCPDUMP_PID" # not INT: background jobs of sh ignore it
	wait "$TCPDUMP_PID" || true
	TCPDUMP_PID=
}

ip netns add "$A"
ip netns add "$B"
ip link add "$VA" netns "$A" type veth peer name "$VB" netns "$B"
inA python3 "$TMP/txcsum_off.py" "$VA"
inB python3 "$TMP/txcsum_off.py" "$VB"
inA ip addr add $A4/24 dev "$VA"
inB ip addr add $B4/24 dev "$VB"
inA ip -6 addr add $A6/64 dev "$VA" nodad
inB ip -6 addr add $B6/64 dev "$VB" nodad
inA ip link set lo up
inB ip link set lo up

# ipv6_mld: carrier up (MLDv2 reports carry a hop-by-hop header), router
# solicitations. tcpdump needs A's end up; the carrier comes with B's end.
inA ip link set "$VA" up
start ipv6_mld
inB ip link set "$VB" up
sleep 3
stop

# arp_ping: ARP request/reply then ICMP echo.
inA ip neigh flush dev "$VA"
start arp_ping
inA ping -c 2 -i 0.2 -W 1 $B4 >/dev/null
stop

# ping_options: record route (-R) and timestamp (-T tsonly) IPv4 options.
start ping_options
inA ping -c 1 -R -W 1 $B4 >/dev/null
inA ping -c 1 -T tsonly -W 1 $B4 >/dev/null || true
stop

# ping_frag: IPv4 fragments, both directions.
start ping_frag
inA ping -c 2 -i 0.2 -s 4000 -W 1 $B4 >/dev/null
stop

# ping6_nd: neighbour solicitation/advertisement and echo.
inA ip -6 neigh flush dev "$VA"
inB ip -6 neigh flush dev "$VB"
start ping6_nd
inA ping -6 -c 2 -i 0.2 -W 1 $B6 >/dev/null
stop

# ping6_frag: IPv6 fragment headers.
start ping6_frag
inA ping -6 -c 2 -i 0.2 -s 4000 -W 1 $B6 >/dev/null
stop

# tcp: HTTP over IPv4 and IPv6 (handshake, data in MSS segments, FIN).
head -c 20000 /dev/urandom | od -An -tx1 | head -c 6000 >"$TMP/small.txt"
head -c 30000 /dev/urandom >"$TMP/big.bin"
nsenter --net=/run/netns/"$B" timeout 30 python3 -m http.server --bind :: --directory "$TMP" 8080 >/dev/null 2>&1 &
SRV_PID=$!
sleep 1.5
start tcp
inA curl -s -m 5 -o /dev/null http://$B4:8080/small.txt
inA curl -s -m 5 -o /dev/null http://[$B6]:8080/big.bin
stop
kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=

# udp: datagrams over IPv4 and IPv6, one larger than the MTU each (fragments)
# and one with an empty payload. Nothing listens in B, so B answers with ICMP
# port unreachable (an ICMP error quoting the datagram).
start udp
inA timeout 5 python3 - $B4 $B6 <<'PY'
import socket, sys
for fam, dst in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("", 40000 if fam == socket.AF_INET else 40006))
    for payload in (b"hello", b"", bytes(range(256)) * 12):
        s.sendto(payload, (dst, 9999))
PY
stop
echo "captured into $OUT"
