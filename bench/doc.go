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
// switchyard process to CPU 1. Results are reported side by side and as
// ratios against the kernel bridge measured in the same run; they are
// figures to compare, never pass/fail assertions.
//
// The generator, the UDP echo pair and the switch run as child processes
// of the same binary (the hidden `bench-worker` subcommand, see Worker), so
// that each can be pinned to its CPU.
//
// Running it needs root, iproute2, taskset and iperf3:
//
//	switchyard bench [--duration 5s] [--tests tcp,pps,rr] [--peers kernel,switchyard] [--tpacket v2|v3] [--json]
//
// or, from the source tree, through the package's tests, which stand in for
// the binary:
//
//	go test ./bench -run TestHarness -v -args -bench.run -bench.duration 5s
package bench
