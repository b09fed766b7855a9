package afpacket

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// mmsgTx is the sendmmsg transmit path: each frame goes out straight from
// the caller's buffer (for a forwarded frame, the view into the ingress
// port's RX ring), with its virtio-net header in a small iovec before it.
// The kernel copies the frame once into its skb; nothing is copied in user
// space. Used under txMu.
type mmsgTx struct {
	hdrs []unix.Mmsghdr
	iov  []unix.Iovec // two per message: vnet header, frame
	vhdr [][frame.VNetHdrLen]byte
}

func newMmsgTx(n int) *mmsgTx {
	m := &mmsgTx{hdrs: make([]unix.Mmsghdr, n), iov: make([]unix.Iovec, 2*n), vhdr: make([][frame.VNetHdrLen]byte, n)}
	return m
}

// writeMmsgLocked sends frames in batches of up to len(m.hdrs), one
// sendmmsg each. txMu is held.
func (p *Port) writeMmsgLocked(frames []port.Frame) (sent, bytes, dropped, errs int, err error) {
	m := p.mmsg
	for len(frames) > 0 && err == nil {
		q := 0
		for len(frames) > 0 && q < len(m.hdrs) {
			f := &frames[0]
			frames = frames[1:]
			d := f.Data
			if len(d) < ethHdrLen || len(d) > p.txMaxData {
				dropped++
				continue
			}
			iov := m.iov[2*q : 2*q+2]
			n := 1
			if p.vnet {
				f.VNet.Encode(m.vhdr[q][:])
				iov[0].Base = &m.vhdr[q][0]
				iov[0].SetLen(frame.VNetHdrLen)
				iov[1].Base = &d[0]
				iov[1].SetLen(len(d))
				n = 2
			} else {
				iov[0].Base = &d[0]
				iov[0].SetLen(len(d))
			}
			h := &m.hdrs[q].Hdr
			h.Iov = &iov[0]
			h.SetIovlen(n)
			q++
		}
		done := 0
		for done < q {
			// MSG_DONTWAIT: a receiver slow to free its skbs fills our
			// send buffer; waiting for it here, under txMu, would stall
			// every port forwarding to this one. Drop and count instead.
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(p.fd),
				uintptr(unsafe.Pointer(&m.hdrs[done])), uintptr(q-done), unix.MSG_DONTWAIT, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno == unix.EAGAIN || errno == unix.ENOBUFS {
				dropped += q - done
				break
			}
			if errno != 0 {
				// The message at done failed: count it and go on with
				// the rest, unless the link is gone.
				errs++
				dropped++
				if errno == unix.ENXIO || errno == unix.ENODEV || (errno == unix.ENETDOWN && p.linkGone()) {
					dropped += q - done - 1
					err = p.errLinkGone("write")
					break
				}
				done++
				continue
			}
			for i := done; i < done+int(r); i++ {
				bytes += int(m.iov[2*i+1].Len)
				if !p.vnet {
					bytes += int(m.iov[2*i].Len) - int(m.iov[2*i+1].Len)
				}
			}
			sent += int(r)
			done += int(r)
		}
		// Drop the references to the callers' buffers.
		for i := 0; i < q; i++ {
			m.iov[2*i].Base, m.iov[2*i+1].Base = nil, nil
		}
	}
	dropped += len(frames)
	return sent, bytes, dropped, errs, err
}
