package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Filter is a compiled capture filter: a subset of pcap-filter(7) evaluated
// on a decoded frame (frame.Parsed) instead of on raw bytes.
//
// Primitives:
//
//	[src|dst] host ADDR            IPv4/IPv6 address (ARP sender/target too)
//	[src|dst] net CIDR             address inside a prefix
//	[tcp|udp] [src|dst] port N     TCP or UDP port
//	[tcp|udp] [src|dst] portrange N-M
//	ether [src|dst] host MAC       Ethernet address
//	src ADDR, dst ADDR             short for src host / dst host
//	tcp udp icmp icmp6 arp ip ip6  protocol
//	vlan [ID]                      any 802.1Q/802.1ad tag, or outer tag ID
//
// combined with not (!), and (&&), or (||) and parentheses; and binds
// tighter than or. Unlike pcap, vlan does not shift the offsets of what
// follows: every primitive looks at the frame behind its tags.
//
// The zero Filter and a nil *Filter match everything. Match allocates
// nothing.
type Filter struct {
	expr  string
	nodes []node
	root  int
}

type op uint8

const (
	opAnd op = iota
	opOr
	opNot
	opHost  // addr; dir
	opNet   // prefix; dir
	opPort  // lo..hi; dir; proto (0: tcp or udp)
	opEther // mac; dir
	opProto // kind
	opVLAN  // id (-1: any)
)

type dir uint8

const (
	dirAny dir = iota
	dirSrc
	dirDst
)

type protoKind uint8

const (
	protoTCP protoKind = iota + 1
	protoUDP
	protoICMP
	protoICMP6
	protoARP
	protoIP
	protoIP6
)

type node struct {
	op     op
	dir    dir
	proto  protoKind
	l, r   int // children of and/or/not (r unused for not)
	addr   netip.Addr
	prefix netip.Prefix
	lo, hi uint16
	mac    frame.MAC
	vlan   int
}

// String returns the expression the filter was compiled from.
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	return f.expr
}

// Match reports whether p passes the filter.
func (f *Filter) Match(p *frame.Parsed) bool {
	if f == nil || len(f.nodes) == 0 {
		return true
	}
	return f.eval(f.root, p)
}

func (f *Filter) eval(i int, p *frame.Parsed) bool {
	n := &f.nodes[i]
	switch n.op {
	case opAnd:
		return f.eval(n.l, p) && f.eval(n.r, p)
	case opOr:
		return f.eval(n.l, p) || f.eval(n.r, p)
	case opNot:
		return !f.eval(n.l, p)
	case opHost:
		if !p.SrcIP.IsValid() {
			return false
		}
		return (n.dir != dirDst && p.SrcIP == n.addr) || (n.dir != dirSrc && p.DstIP == n.addr)
	case opNet:
		if !p.SrcIP.IsValid() {
			return false
		}
		return (n.dir != dirDst && n.prefix.Contains(p.SrcIP)) || (n.dir != dirSrc && n.prefix.Contains(p.DstIP))
	case opPort:
		if !p.IsIP() || p.Frag == frame.LaterFragment || p.L4Off == 0 {
			return false
		}
		switch p.Proto {
		case frame.ProtoTCP:
			if n.proto == protoUDP {
				return false
			}
		case frame.ProtoUDP:
			if n.proto == protoTCP {
				return false
			}
		default:
			return false
		}
		if p.Reason != frame.OK {
			return false
		}
		in := func(v uint16) bool { return v >= n.lo && v <= n.hi }
		return (n.dir != dirDst && in(p.SrcPort)) || (n.dir != dirSrc && in(p.DstPort))
	case opEther:
		if p.Reason == frame.ReasonShort {
			return false
		}
		return (n.dir != dirDst && p.SrcMAC == n.mac) || (n.dir != dirSrc && p.DstMAC == n.mac)
	case opProto:
		switch n.proto {
		case protoTCP:
			return p.IsIP() && p.Proto == frame.ProtoTCP
		case protoUDP:
			return p.IsIP() && p.Proto == frame.ProtoUDP
		case protoICMP:
			return p.IPVersion == 4 && p.Proto == frame.ProtoICMPv4
		case protoICMP6:
			return p.IPVersion == 6 && p.Proto == frame.ProtoICMPv6
		case protoARP:
			return p.EtherType == frame.EtherTypeARP && p.Reason != frame.ReasonShort
		case protoIP:
			return p.EtherType == frame.EtherTypeIPv4 && p.Reason != frame.ReasonShort
		case protoIP6:
			return p.EtherType == frame.EtherTypeIPv6 && p.Reason != frame.ReasonShort
		}
	case opVLAN:
		return p.VLANTags > 0 && (n.vlan < 0 || int(p.VLAN) == n.vlan)
	}
	return false
}

// FilterError is a malformed filter expression: the message names the
// offending token and its column (1-based).
type FilterError struct {
	Expr   string
	Column int // 0 when the expression ended too early
	Token  string
	Msg    string
}

func (e *FilterError) Error() string {
	if e.Column == 0 {
		return fmt.Sprintf("filter %q: %s at the end", e.Expr, e.Msg)
	}
	return fmt.Sprintf("filter %q: %s at column %d (%q)", e.Expr, e.Msg, e.Column, e.Token)
}

type token struct {
	s   string
	pos int // byte offset
}

func lex(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '!':
			out = append(out, token{s[i : i+1], i})
			i++
		case (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c:
			out = append(out, token{s[i : i+2], i})
			i += 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()!", rune(s[j])) &&
				!((s[j] == '&' || s[j] == '|') && j+1 < len(s) && s[j+1] == s[j]) {
				j++
			}
			if j == i { // a lone & or |
				j++
			}
			out = append(out, token{s[i:j], i})
			i = j
		}
	}
	return out
}

type parser struct {
	expr  string
	toks  []token
	i     int
	nodes []node
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return strings.ToLower(p.toks[p.i].s)
	}
	return ""
}

func (p *parser) errAt(i int, format string, args ...any) error {
	e := &FilterError{Expr: p.expr, Msg: fmt.Sprintf(format, args...)}
	if i < len(p.toks) {
		e.Column, e.Token = p.toks[i].pos+1, p.toks[i].s
	}
	return e
}

func (p *parser) add(n node) int {
	p.nodes = append(p.nodes, n)
	return len(p.nodes) - 1
}

// Compile parses expr. An empty expression matches everything.
func Compile(expr string) (*Filter, error) {
	p := &parser{expr: expr, toks: lex(expr)}
	f := &Filter{expr: expr}
	if len(p.toks) == 0 {
		return f, nil
	}
	root, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		if p.peek() == ")" {
			return nil, p.errAt(p.i, "unbalanced parenthesis")
		}
		return nil, p.errAt(p.i, "want and, or or the end")
	}
	f.nodes, f.root = p.nodes, root
	return f, nil
}

func (p *parser) or() (int, error) {
	l, err := p.and()
	if err != nil {
		return 0, err
	}
	for t := p.peek(); t == "or" || t == "||"; t = p.peek() {
		p.i++
		r, err := p.and()
		if err != nil {
			return 0, err
		}
		l = p.add(node{op: opOr, l: l, r: r})
	}
	return l, nil
}

func (p *parser) and() (int, error) {
	l, err := p.not()
	if err != nil {
		return 0, err
	}
	for t := p.peek(); t == "and" || t == "&&"; t = p.peek() {
		p.i++
		r, err := p.not()
		if err != nil {
			return 0, err
		}
		l = p.add(node{op: opAnd, l: l, r: r})
	}
	return l, nil
}

func (p *parser) not() (int, error) {
	if t := p.peek(); t == "not" || t == "!" {
		p.i++
		x, err := p.not()
		if err != nil {
			return 0, err
		}
		return p.add(node{op: opNot, l: x}), nil
	}
	return p.primary()
}

func (p *parser) primary() (int, error) {
	if p.i >= len(p.toks) {
		return 0, p.errAt(p.i, "want a primitive (host, net, port, tcp, ...)")
	}
	if p.peek() == "(" {
		open := p.i
		p.i++
		x, err := p.or()
		if err != nil {
			return 0, err
		}
		if p.peek() != ")" {
			if p.i >= len(p.toks) {
				return 0, p.errAt(open, "unclosed parenthesis")
			}
			return 0, p.errAt(p.i, "want )")
		}
		p.i++
		return x, nil
	}
	return p.prim()
}

var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "host": true, "net": true, "port": true, "portrange": true,
	"src": true, "dst": true, "ether": true, "tcp": true, "udp": true, "icmp": true, "icmp6": true,
	"arp": true, "ip": true, "ip6": true, "vlan": true, "(": true, ")": true, "!": true, "&&": true, "||": true,
}

// value takes the next token as the argument of the keyword at index kw.
func (p *parser) value(kw int, what string) (string, int, error) {
	if p.i >= len(p.toks) || keywords[p.peek()] {
		return "", 0, p.errAt(p.i, "%s after %q", what, p.toks[kw].s)
	}
	p.i++
	return p.toks[p.i-1].s, p.i - 1, nil
}

func (p *parser) prim() (int, error) {
	start := p.i
	t := p.peek()
	switch t {
	case "tcp", "udp":
		p.i++
		proto := protoTCP
		if t == "udp" {
			proto = protoUDP
		}
		if nt := p.peek(); nt == "port" || nt == "portrange" || ((nt == "src" || nt == "dst") && p.i+1 < len(p.toks) &&
			(strings.EqualFold(p.toks[p.i+1].s, "port") || strings.EqualFold(p.toks[p.i+1].s, "portrange"))) {
			return p.qualified(proto)
		}
		return p.add(node{op: opProto, proto: proto}), nil
	case "icmp", "icmp6", "arp", "ip", "ip6":
		p.i++
		return p.add(node{op: opProto, proto: map[string]protoKind{
			"icmp": protoICMP, "icmp6": protoICMP6, "arp": protoARP, "ip": protoIP, "ip6": protoIP6,
		}[t]}), nil
	case "vlan":
		p.i++
		n := node{op: opVLAN, vlan: -1}
		if p.i < len(p.toks) && !keywords[p.peek()] {
			v, err := strconv.ParseUint(p.toks[p.i].s, 10, 16)
			if err != nil || v > 4095 {
				return 0, p.errAt(p.i, "VLAN ID must be 0-4095")
			}
			n.vlan = int(v)
			p.i++
		}
		return p.add(n), nil
	case "ether":
		p.i++
		d := p.dir()
		if p.peek() != "host" {
			return 0, p.errAt(p.i, "want host after %q", p.toks[start].s)
		}
		p.i++
		v, vi, err := p.value(p.i-1, "want a MAC address")
		if err != nil {
			return 0, err
		}
		hw, err := parseMAC(v)
		if err != nil {
			return 0, p.errAt(vi, "not a MAC address")
		}
		return p.add(node{op: opEther, dir: d, mac: hw}), nil
	case "src", "dst", "host", "net", "port", "portrange":
		return p.qualified(0)
	}
	if p.i >= len(p.toks) {
		return 0, p.errAt(p.i, "want a primitive")
	}
	if t == ")" {
		return 0, p.errAt(p.i, "unbalanced parenthesis")
	}
	if _, err := netip.ParseAddr(p.toks[p.i].s); err == nil {
		return 0, p.errAt(p.i, "an address needs a qualifier (host, src or dst)")
	}
	return 0, p.errAt(p.i, "unknown primitive")
}

func (p *parser) dir() dir {
	switch p.peek() {
	case "src":
		p.i++
		return dirSrc
	case "dst":
		p.i++
		return dirDst
	}
	return dirAny
}

// qualified parses [src|dst] (host|net|port|portrange) VALUE, or src/dst
// VALUE meaning a host; proto restricts ports to TCP or UDP.
func (p *parser) qualified(proto protoKind) (int, error) {
	d := p.dir()
	kwi := p.i
	kw := p.peek()
	switch kw {
	case "host", "net", "port", "portrange":
		p.i++
	default:
		if d == dirAny || p.i >= len(p.toks) || keywords[kw] {
			return 0, p.errAt(p.i, "want host, net, port or portrange")
		}
		kw, kwi = "host", p.i-1 // src ADDR
	}
	if proto != 0 && kw != "port" && kw != "portrange" {
		return 0, p.errAt(kwi, "want port or portrange after tcp/udp")
	}
	v, vi, err := p.value(kwi, "want a value")
	if err != nil {
		return 0, err
	}
	switch kw {
	case "host":
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return 0, p.errAt(vi, "not an IP address")
		}
		return p.add(node{op: opHost, dir: d, addr: a.Unmap()}), nil
	case "net":
		pf, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return 0, p.errAt(vi, "not a network (want ADDR/BITS)")
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		if pf.Addr().Is4In6() {
			pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
		}
		return p.add(node{op: opNet, dir: d, prefix: pf.Masked()}), nil
	case "port":
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return 0, p.errAt(vi, "not a port number (0-65535)")
		}
		return p.add(node{op: opPort, dir: d, proto: proto, lo: uint16(n), hi: uint16(n)}), nil
	default: // portrange
		a, b, ok := strings.Cut(v, "-")
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return 0, p.errAt(vi, "not a port range (want N-M)")
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		return p.add(node{op: opPort, dir: d, proto: proto, lo: uint16(lo), hi: uint16(hi)}), nil
	}
}

func parseMAC(s string) (frame.MAC, error) {
	var m frame.MAC
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '-' || r == '.' })
	if len(parts) != 6 {
		return m, fmt.Errorf("bad MAC %q", s)
	}
	for i, x := range parts {
		v, err := strconv.ParseUint(x, 16, 8)
		if err != nil || len(x) > 2 {
			return m, fmt.Errorf("bad MAC %q", s)
		}
		m[i] = byte(v)
	}
	return m, nil
}
