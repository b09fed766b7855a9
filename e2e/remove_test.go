//go:build linux

package e2e

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
)

// TestRemovePortUnderLoad removes and re-adds a ring port again and again
// while its namespace floods broadcast frames into it, so the port's RX
// goroutine is usually forwarding views into its ring when Close comes.
// The ring must stay mapped until the goroutine is done with them.
func TestRemovePortUnderLoad(t *testing.T) {
	tp := newTopo(t, "ring")
	h := tp.hosts[2]
	fd := rawSocket(t, h.ns, "eth0", 0x88b5)
	idx := ifindex(t, h.ns, "eth0")
	frame := make([]byte, 1400)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], h.mac)
	frame[12], frame[13] = 0x88, 0xb5

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		to := &unix.SockaddrLinklayer{Ifindex: idx, Halen: 6}
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			select {
			case <-stop:
				return
			default:
			}
			_ = unix.Sendto(fd, frame, 0, to)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for i := 0; i < 30; i++ {
		time.Sleep(20 * time.Millisecond)
		if err := tp.br.RemovePort(h.ns); err != nil {
			t.Fatalf("round %d: remove: %v", i, err)
		}
		var p port.Port
		err := netns.Do(tp.sw, func() error {
			rp, err := afpacket.Open(h.link, nil)
			p = rp
			return err
		})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", i, err)
		}
		if err := tp.br.AddPort(h.ns, p, bridge.DefaultFlags()); err != nil {
			t.Fatalf("round %d: re-add: %v", i, err)
		}
	}
	pi, err := tp.br.Port(tp.hosts[0].ns)
	if err != nil {
		t.Fatal(err)
	}
	if pi.Counters.TxFlooded == 0 {
		t.Error("no flood reached port 1: the test did not load the port it removed")
	}
	if !ping(t, tp.hosts[0].ns, tp.hosts[1].addr, 2) {
		t.Error("forwarding stopped after the removals")
	}
}
