package nat

// addCounts adds a packet to *pkts and size to *bytes with plain
// (unlocked) read-modify-write instructions: each word is always read and
// written whole, and readers load it atomically, but two concurrent calls
// on the same counters can lose one of their increments. The NAT calls it
// for one direction of one flow, which one goroutine translates in
// practice (an endpoint's bridge port inside, the uplink's reader
// outside): there it counts exactly, and it costs no locked instruction.
// It is in assembly because Go has no relaxed atomic add, and a plain Go
// increment racing with those loads would be a data race.
//
//go:noescape
func addCounts(pkts *uint32, bytes *uint64, size uint64)
