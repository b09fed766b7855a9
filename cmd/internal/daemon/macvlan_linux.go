package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
)

// The kernel's macvlan rx handler consumes some frames on the lower device
// (RX_HANDLER_CONSUMED / ANOTHER): the parent's own stack never sees them.
// Our engine reads the parent with a packet socket, which sees every frame
// but takes none away from the stack. Where that makes a difference the
// daemon drops the frames at the parent's tc ingress hook, which runs
// after packet sockets have their copy and before the stack: broadcast
// and multicast with the source MAC of a private or passthru child (the
// kernel hands them back to that child only), and in passthru mode every
// unicast frame (all of it is the child's).

// ingressHandle is the ingress qdisc's handle, ffff:.
var ingressHandle = netlink.MakeHandle(0xffff, 0)

// consumePrio is the priority of our tc filters; each is told apart by its
// name, which names the child's MAC.
const consumePrio = 0xc5a1

// Classic BPF, as cls_bpf runs it in direct-action mode: the program's
// return value is the tc verdict. This kernel needs neither act_gact nor
// an eBPF loader for that.
const (
	bpfLdB   = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
	bpfLdH   = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
	bpfLdW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfJeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfRet   = unix.BPF_RET | unix.BPF_K
	skfLLOff = 0xffe00000 // SKF_LL_OFF (-0x200000): loads from the MAC header
	actShot  = 2          // TC_ACT_SHOT
	actUnset = 0xffffffff // TC_ACT_UNSPEC: not ours, on to the next filter
)

// consumeProgram returns the filter that drops what is consumed for a
// child: multicast destinations from src, or (src nil) every unicast
// destination.
func consumeProgram(src net.HardwareAddr) []unix.SockFilter {
	if src == nil {
		return []unix.SockFilter{
			{Code: bpfLdB, K: skfLLOff},         // destination's first byte
			{Code: bpfJset, Jt: 1, Jf: 0, K: 1}, // multicast: not ours
			{Code: bpfRet, K: actShot},          //
			{Code: bpfRet, K: actUnset},         //
		}
	}
	return []unix.SockFilter{
		{Code: bpfLdB, K: skfLLOff},                                                // destination's first byte
		{Code: bpfJset, Jt: 0, Jf: 5, K: 1},                                        // unicast: not ours
		{Code: bpfLdW, K: skfLLOff + 6},                                            // source bytes 0-3
		{Code: bpfJeq, Jt: 0, Jf: 3, K: binary.BigEndian.Uint32(src[0:4])},         //
		{Code: bpfLdH, K: skfLLOff + 10},                                           // source bytes 4-5
		{Code: bpfJeq, Jt: 0, Jf: 1, K: uint32(binary.BigEndian.Uint16(src[4:6]))}, //
		{Code: bpfRet, K: actShot},                                                 //
		{Code: bpfRet, K: actUnset},                                                //
	}
}

// consumeName names the filter for src.
func consumeName(src net.HardwareAddr) string {
	if src == nil {
		return "switchyard-macvlan unicast"
	}
	return "switchyard-macvlan " + src.String()
}

// setConsume adds (on) or removes the drop filter for src (nil: every
// unicast frame) on link iface in namespace ns. The ingress qdisc is added
// when missing; created reports whether this call created it.
func setConsume(ns, iface string, src net.HardwareAddr, on bool) (created bool, err error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		return false, fmt.Errorf("find %s: %w", iface, err)
	}
	idx := l.Attrs().Index
	name := consumeName(src)
	filters, err := h.FilterList(l, ingressHandle)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("list tc filters on %s: %w", iface, err)
	}
	var have netlink.Filter
	for _, f := range filters {
		if b, ok := f.(*netlink.BpfFilter); ok && b.Priority == consumePrio && b.Name == name {
			have = f
			break
		}
	}
	if !on {
		if have == nil {
			return false, nil
		}
		if err := h.FilterDel(have); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("delete tc filter on %s: %w", iface, err)
		}
		return false, nil
	}
	if have != nil {
		return false, nil
	}
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscAdd(q); err == nil {
		created = true
	} else if !errors.Is(err, unix.EEXIST) {
		return false, fmt.Errorf("add ingress qdisc on %s: %w", iface, err)
	}
	prog := consumeProgram(src)
	ops := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		ops = binary.NativeEndian.AppendUint16(ops, ins.Code)
		ops = append(ops, ins.Jt, ins.Jf)
		ops = binary.NativeEndian.AppendUint32(ops, ins.K)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(idx), Parent: ingressHandle,
		Info: netlink.MakeHandle(consumePrio, nl.Swap16(unix.ETH_P_ALL))})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("bpf")))
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	opts.AddRtAttr(nl.TCA_BPF_OPS_LEN, nl.Uint16Attr(uint16(len(prog))))
	opts.AddRtAttr(nl.TCA_BPF_OPS, ops)
	opts.AddRtAttr(nl.TCA_BPF_NAME, nl.ZeroTerminated(name))
	opts.AddRtAttr(nl.TCA_BPF_FLAGS, nl.Uint32Attr(nl.TCA_BPF_FLAG_ACT_DIRECT))
	req.AddData(opts)
	err = netns.Do(ns, func() error {
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
	if err != nil {
		return created, fmt.Errorf("add tc filter on %s: %w", iface, err)
	}
	return created, nil
}

// delIngressQdisc removes the ingress qdisc of iface in ns (with every
// filter on it); a missing one is not an error.
func delIngressQdisc(ns, iface string) error {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		if linkNotFound(err) {
			return nil
		}
		return err
	}
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: ingressHandle, Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("delete ingress qdisc on %s: %w", iface, err)
	}
	return nil
}

// setLinkMAC sets the MAC of link iface in ns.
func setLinkMAC(ns, iface string, mac net.HardwareAddr) error {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", iface, err)
	}
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("set MAC of %s: %w", iface, err)
	}
	return nil
}

// addHostPair makes a macvlan network's host-access veth pair in namespace
// ns: stack (with mac, left to the host's stack) and eng (for the engine),
// both up, no addresses.
func addHostPair(ns, stack, eng string, mac net.HardwareAddr, mtu int) (err error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: eng, MTU: mtu}, PeerName: stack, PeerHardwareAddr: mac}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s: %w", eng, err)
	}
	defer func() {
		if err != nil {
			_ = h.LinkDel(v)
		}
	}()
	for _, name := range []string{eng, stack} {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
	}
	return nil
}
