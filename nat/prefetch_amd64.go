package nat

// prefetch asks the CPU to start loading the cache line at addr into all
// cache levels (PREFETCHT0) and returns at once. Unlike a load it never
// faults, never waits for the line and does not hold up the instructions
// after it, so many can be in flight together.
func prefetch(addr uintptr)
