package main

import (
	"fmt"
	"time"
)

// optDuration is a duration flag that may be left unset: its default
// shows as nothing in the help, and set tells whether it was given.
type optDuration struct {
	d   time.Duration
	set bool
}

func (o *optDuration) String() string {
	if !o.set {
		return ""
	}
	return o.d.String()
}

func (o *optDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 0s or 20us")
	}
	o.d, o.set = d, true
	return nil
}

func (o *optDuration) Type() string { return "duration" }

// ptr returns the duration, or nil when the flag was not given.
func (o *optDuration) ptr() *time.Duration {
	if !o.set {
		return nil
	}
	d := o.d
	return &d
}

// cpuLatencyUsage is the help of --cpu-latency (daemon and bench).
const cpuLatencyUsage = "hold every CPU's wakeup from idle under this bound while running (PM QoS, /dev/cpu_dma_latency); 0s keeps idle CPUs polling instead of halting: lowest latency, but idle CPUs never sleep"
