// Package bench is switchyard's benchmark harness (`switchyard bench`). It
// measures, in one run, several implementations (peers) forwarding between
// network namespaces: the kernel bridge, switchyard's learning bridge over
// AF_PACKET rings and with TAP endpoints, and Open vSwitch's userspace
// datapath over AF_PACKET and AF_XDP where installed; and, on a routed
// topology of their own, a NAT pair: the kernel's nftables DNAT and
// masquerade against switchyard's gateway and NAT.
//
// # Topologies and peers
//
// Each peer, in each rep, gets a topology of its own: a switch namespace S
// and endpoint namespaces A, B (and more, Config.Endpoints), each linked to
// S, built before the peer starts and removed after it stops. A peer is
// the small interface in peer_linux.go: it builds its topology and starts
// forwarding, and hands the tests an instance that says where the
// endpoints are, how A reaches each of them (address and next-hop MAC),
// which processes make up the switch and how to read its CPU time. The
// tests see nothing else, so a routed or translating peer (NAT) plugs in
// by giving other targets.
//
// # The NAT pair
//
// The nat-kernel and nat-switchyard peers (nat_linux.go) put A outside, on
// a segment of its own to S, and the other endpoints inside, behind a
// gateway in S that publishes their ports on S's outside addresses and
// masquerades them: the kernel with a bridge, ip_forward and nftables, or
// switchyard's bridge, gateway and NAT in the nat worker. Their targets
// are the published addresses, so every test runs through the
// translation. They are compared with each other, not with the bridges.
//
// # Tests
//
// TCP throughput on one and four streams (iperf3, or the built-in bulk
// sender); 64- and 1518-byte frames at the receivers from a generator in A
// at full speed, with CPU seconds per million frames; an RFC 2544-style
// binary search for the highest offered rate with loss under
// LossThreshold; UDP request/response latency with one in flight; new
// connections per second (short HTTP/1.0 connections, eight in flight,
// the client's source rotating over a pool of addresses), from A to B and
// from B to A (through a NAT peer: DNAT, and masquerade). Endpoint
// tools are pinned to CPU 0 and the switch process to CPU 1.
//
// # Fairness
//
// Reps interleave the peers (A B C, A B C, ...). The report keeps every
// sample, gives medians and ranges, and ratios computed rep by rep. It
// records the machine (CPUs, model, kernel, congestion control) and each
// peer's MTU and offloads. Every figure comes from the run that prints it.
//
// # Failures
//
// A missing program skips its peer with a note. A test that fails is a
// sample with an error. A peer whose process exits, or that no longer
// carries a round trip from A to B after a test, is stopped, its
// namespaces removed, and its runs end with an error row; the others
// finish.
//
// # Open vSwitch
//
// The ovs peers are a private ovsdb-server and ovs-vswitchd run in S, with
// a fresh database, pid files, control sockets and logs in a directory of
// their own under /tmp (never the system's /var/run/openvswitch or
// /etc/openvswitch database), stopped by PID at the end of the peer's rep.
// The bridge uses the userspace datapath (datapath_type=netdev). The ovs
// peer opens its ports over AF_PACKET (type system) with
// userspace-tso-enable, so that, like switchyard's, they carry a
// virtio-net header: without it Open vSwitch forwards the veths' frames
// with their checksums unfinished. The ovs-afxdp peer opens them over
// AF_XDP (type afxdp, generic mode on veth) with a PMD thread pinned to the
// switch CPU, and turns the endpoints' offloads off (ethtool -K eth0 tx off
// tso off gso off) since AF_XDP carries no offload metadata.
//
// The generator, the UDP echo pair, the TCP bulk pair, the HTTP server and
// connection client, and the switch and NAT run as
// child processes of the same binary (the hidden `bench-worker`
// subcommand, see Worker), so that each can be pinned to its CPU.
//
// Running it needs root, iproute2 and taskset:
//
//	switchyard bench [--quick] [--reps 3] [--duration 5s] [--tests tcp,pps64,ndr64,rr,conn,...]
//	        [--peers kernel,switchyard,...] [--endpoints 2] [--json FILE] [--plot FILE.svg]
//
// or, from the source tree, through the package's tests, which stand in for
// the binary:
//
//	go test ./bench -run TestHarness -v -args -bench.run -bench.duration 5s
package bench
