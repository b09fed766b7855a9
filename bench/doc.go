// Package bench is switchyard's benchmark harness. It builds one topology
// of network namespaces — endpoints A and B, each with a veth to a switch
// namespace S — and measures, in one run, each peer forwarding between
// them: the kernel bridge, switchyard's learning bridge over AF_PACKET
// rings, and Open vSwitch's userspace datapath where installed.
//
// Three tests run against every peer: single-stream TCP throughput
// (iperf3), the rate of 64-byte frames arriving at B while a generator in A
// offers more than the switch can take, and UDP request/response latency
// with one request in flight. Endpoint tools are pinned to CPU 0 and the
// switch process (switchyard, or ovs-vswitchd) to CPU 1. Results are
// reported side by side and as ratios against the kernel bridge measured
// in the same run, and switchyard's against Open vSwitch's; they are
// figures to compare, never pass/fail assertions.
//
// The Open vSwitch peer is a private ovsdb-server and ovs-vswitchd that
// the harness runs in the switch namespace, with a fresh database, pid
// files, control sockets and logs in a directory of their own under /tmp
// (never the system's /var/run/openvswitch or /etc/openvswitch database),
// and stops by PID at the end of the peer's tests. Its bridge uses the
// userspace datapath (datapath_type=netdev) with both ports opened over
// AF_PACKET (type system) and userspace-tso-enable, so that, like
// switchyard's, they carry a virtio-net header: without it Open vSwitch
// forwards the veths' frames with their checksums unfinished. The peer is
// among DefaultPeers, and so measured by default, only when Open vSwitch is
// installed (OVSInstalled: apt-get install openvswitch-switch; the system's
// own Open vSwitch service need not run and is not touched); asked for
// and not installed, it is skipped with a note.
//
// The generator, the UDP echo pair and the switch run as child processes
// of the same binary (the hidden `bench-worker` subcommand, see Worker), so
// that each can be pinned to its CPU.
//
// Running it needs root, iproute2, taskset and iperf3:
//
//	switchyard bench [--duration 5s] [--tests tcp,pps,rr] [--peers kernel,switchyard,ovs] [--tpacket v2|v3] [--json]
//
// or, from the source tree, through the package's tests, which stand in for
// the binary:
//
//	go test ./bench -run TestHarness -v -args -bench.run -bench.duration 5s
package bench
