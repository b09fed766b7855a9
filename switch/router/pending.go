package router

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Frames waiting for a next hop's MAC, as the kernel's neighbour queue
// holds them: a few per address (the kernel keeps the newest), sent when
// the ARP reply comes, dropped when it does not come in time.
const (
	pendingPerHop  = 3
	pendingMax     = 64
	pendingTimeout = 3 // seconds
)

type pendingFrame struct {
	hop    netip.Addr
	uplink bool // for the uplink; else for an endpoint, through the queue
	at     uint32
	data   []byte // owned
	vnet   frame.VNetHdr
	routed *atomic.Uint64 // counts it when it goes
}

type pendingQueue struct {
	mu     sync.Mutex
	n      atomic.Int32 // frames held: learning checks it before locking
	frames []pendingFrame
}

// expireLocked drops frames held longer than the timeout and returns
// them, appended to gone.
func (q *pendingQueue) expireLocked(now uint32, gone []pendingFrame) []pendingFrame {
	k := 0
	for _, f := range q.frames {
		if now-f.at < pendingTimeout {
			q.frames[k] = f
			k++
		} else {
			gone = append(gone, f)
		}
	}
	clear(q.frames[k:])
	q.frames = q.frames[:k]
	q.n.Store(int32(k))
	return gone
}

// hold keeps a copy of f until hop is resolved. It returns the frames it
// dropped to make room or by age (f itself when the queue is full of
// younger frames for other hops).
func (q *pendingQueue) hold(hop netip.Addr, uplink bool, f *port.Frame, routed *atomic.Uint64, now uint32) (dropped []pendingFrame) {
	q.mu.Lock()
	defer func() {
		q.n.Store(int32(len(q.frames)))
		q.mu.Unlock()
	}()
	dropped = q.expireLocked(now, nil)
	first, same := -1, 0
	for i, p := range q.frames {
		if p.hop == hop && p.uplink == uplink {
			if first < 0 {
				first = i
			}
			same++
		}
	}
	switch {
	case same >= pendingPerHop:
		dropped = append(dropped, q.frames[first])
		q.frames = append(q.frames[:first], q.frames[first+1:]...)
	case len(q.frames) >= pendingMax:
		return append(dropped, pendingFrame{hop: hop, uplink: uplink, data: f.Data})
	}
	q.frames = append(q.frames, pendingFrame{hop: hop, uplink: uplink, at: now,
		data: append([]byte(nil), f.Data...), vnet: f.VNet, routed: routed})
	return dropped
}

// release takes the frames held for hop, oldest first.
func (q *pendingQueue) release(hop netip.Addr, uplink bool) []pendingFrame {
	if q.n.Load() == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []pendingFrame
	k := 0
	for _, p := range q.frames {
		if p.hop == hop && p.uplink == uplink {
			out = append(out, p)
			continue
		}
		q.frames[k] = p
		k++
	}
	clear(q.frames[k:])
	q.frames = q.frames[:k]
	q.n.Store(int32(k))
	return out
}

// holdFor keeps f for hop (on the uplink, or an endpoint's address) and
// counts what it costs; routed counts it when it goes.
func (p *Port) holdFor(hop netip.Addr, uplink bool, f *port.Frame, routed *atomic.Uint64) {
	p.neighQueued.Add(1)
	p.unheld(p.pending.hold(hop, uplink, f, routed, p.now.Load()))
}

// expirePending drops the frames that waited too long for their next hop.
func (p *Port) expirePending() {
	if p.pending.n.Load() == 0 {
		return
	}
	p.pending.mu.Lock()
	gone := p.pending.expireLocked(p.now.Load(), nil)
	p.pending.mu.Unlock()
	p.unheld(gone)
}

// unheld counts frames dropped from the queue and shows them to a capture.
func (p *Port) unheld(gone []pendingFrame) {
	if len(gone) == 0 {
		return
	}
	p.neighMiss.Add(uint64(len(gone)))
	mir := p.mirror.Load()
	for _, f := range gone {
		where := p.name
		if f.uplink {
			where = p.up.port
		}
		mir.drop(where, f.uplink, dropNeighMiss, f.data)
	}
}

// releaseUplink sends the frames held for the uplink next hop a, now at mac.
func (p *Port) releaseUplink(a netip.Addr, mac frame.MAC) {
	fs := p.pending.release(a, true)
	if len(fs) == 0 {
		return
	}
	u := p.up
	mir := p.mirror.Load()
	out := make([]port.Frame, len(fs))
	for i := range fs {
		eth := frame.Ethernet(fs[i].data)
		eth.SetDst(mac)
		eth.SetSrc(u.mac)
		out[i] = port.Frame{Data: fs[i].data, VNet: fs[i].vnet}
		mir.out(u.port, fs[i].data)
		fs[i].routed.Add(1)
	}
	_, _ = u.p.Write(out)
}

// releaseInside hands the bridge the frames held for the endpoint a, now
// at mac.
func (p *Port) releaseInside(a netip.Addr, mac frame.MAC) {
	for _, f := range p.pending.release(a, false) {
		eth := frame.Ethernet(f.data)
		eth.SetDst(mac)
		eth.SetSrc(p.mac)
		p.queue(port.Frame{Data: f.data, VNet: f.vnet})
		f.routed.Add(1)
	}
}
