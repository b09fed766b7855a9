// Package nat is the gateway's network address translation: a connection
// table keyed by 5-tuple in both directions, TCP state tracking with
// netfilter's timeouts, masquerade (SNAT to an uplink address with an
// allocated port or ICMP id), published ports (DNAT, a port range as one
// rule, optionally bound to one external address and filtered by source),
// hairpin NAT for an endpoint reaching its own network's published port,
// translation of ICMP errors about a translated flow (inner header
// included) and of IP fragments (the first carries the ports, later ones
// follow it).
//
// NAT works on IPv4 packets in place: addresses and ports are rewritten with
// incremental checksum updates (RFC 1624), and for a frame whose transport
// checksum is still partial (frame.VNetNeedsCsum, as veth and TAP hand over
// GSO super-frames) only the pseudo-header seed is adjusted. It imports
// switch/frame and nothing else of ours; the gateway (switch/router)
// resolves next hops, decrements the TTL and moves the frames.
//
// # Table
//
// The table is split into shards, each with its own lock, open-addressing
// index and slab of entries. A flow lives in the shard of its original-
// direction key; its reply key is indexed in the shard its own hash picks.
// Lock order: shards are locked in ascending index; a goroutine that holds
// one shard lock and needs a third (eviction) only tries it. Inserting and
// freeing a flow hold the shard locks of both its keys. A packet of a live
// flow takes no lock: it walks the index with atomic loads, checks the
// entry's key between two loads of the entry's word (expiry, generation,
// state in one 64-bit atomic; freeing bumps the generation) and commits
// the state and expiry by compare-and-swap of that word, so it never
// updates a flow freed or reused under it. Anything it is unsure of (no
// slot found, expired, the word changed) goes to the locked lookup, which
// decides as the table stands. Packet and byte counters are per direction
// and atomic. One race is left open, as too rare to pay for on every
// packet: a packet whose flow is freed and its entry reused by a new flow
// between the packet's check and its count (a window of a few
// instructions, against a free and an insert under locks) is counted in
// the new flow.
//
// Time is a coarse clock in seconds that the owner advances with Tick (the
// daemon once a second, tests with any time they like); expiry is lazy on
// lookup and eager in Sweep.
package nat
