package macvlan

import (
	"slices"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// mcFilter is a child's multicast receive filter, as the kernel's macvlan
// keeps one per device (macvlan_compute_filter): broadcast always passes;
// a promiscuous or allmulti child takes every group; otherwise a group
// passes only when it is on the child's multicast list.
//
// The kernel's filter is a 256-bit hash of the groups, so a group that
// shares a bit with a listed one slips through there; ours is exact: a
// 256-bit map of the same kind answers most misses in one load, and a
// sorted list of the groups settles the rest. A filter is immutable once
// published; a change builds a new one.
type mcFilter struct {
	all    bool
	bits   [4]uint64
	groups []uint64 // the groups as 48-bit keys, sorted
	macs   []frame.MAC
}

// macKey packs a MAC into the low 48 bits of a uint64.
func macKey(m frame.MAC) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// mcBit picks a key's bit in the 256-bit map: the top byte of a
// multiplicative hash.
func mcBit(k uint64) uint { return uint((k * 0x9e3779b97f4a7c15) >> 56) }

// newMcFilter builds the filter for a child that is promiscuous or
// allmulti (all), or else has the multicast list groups (unicast entries
// in it are ignored).
func newMcFilter(all bool, groups []frame.MAC) *mcFilter {
	f := &mcFilter{all: all}
	if all {
		return f
	}
	for _, g := range groups {
		if !g.IsMulticast() {
			continue
		}
		k := macKey(g)
		if i, found := slices.BinarySearch(f.groups, k); !found {
			f.groups = slices.Insert(f.groups, i, k)
			f.macs = slices.Insert(f.macs, i, g)
		}
		b := mcBit(k)
		f.bits[b>>6] |= 1 << (b & 63)
	}
	return f
}

// has reports whether a frame to multicast destination dst passes. A nil
// filter (a child whose list is not known) passes everything.
func (f *mcFilter) has(dst frame.MAC) bool {
	if f == nil || f.all || dst == frame.Broadcast {
		return true
	}
	k := macKey(dst)
	b := mcBit(k)
	if f.bits[b>>6]&(1<<(b&63)) == 0 {
		return false
	}
	_, found := slices.BinarySearch(f.groups, k)
	return found
}
