package demo

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

func sampleReport() *Report {
	port := func(name, kind, ip, mac string, rx, tx, fl uint64) api.Port {
		p := api.Port{Name: name, Kind: kind, Netns: name, IfName: "eth0", IPv4: ip, MAC: mac, Up: true,
			Counters: api.Counters{RxFrames: rx, TxFrames: tx, TxFlooded: fl}}
		if kind == api.KindGateway {
			p.Netns, p.IfName = "", ""
		}
		return p
	}
	gw := port("gateway", api.KindGateway, "198.18.100.1/24", "f2:0d:51:d9:11:d9", 3, 6, 4)
	web := port("sydemo-web-ab12", api.KindVeth, "198.18.100.2/24", "be:2f:6c:99:9f:fb", 6, 9, 4)
	client := port("sydemo-client-ab12", api.KindVeth, "198.18.100.3/24", "c6:3a:20:03:69:d0", 12, 13, 1)
	peer := port("sydemo-peer-ab12", api.KindTap, "198.18.100.4/24", "aa:1b:24:eb:3c:a1", 4, 5, 3)
	peer.Counters.Drops = map[string]uint64{"no-route": 2, "malformed": 1, "filtered": 0}
	return &Report{
		Network: api.Network{Name: "demo", Driver: "bridge",
			Subnets:    []api.Subnet{{Subnet: "198.18.100.0/24", Gateway: "198.18.100.1"}},
			GatewayMAC: gw.MAC,
			// As the daemon lists them: gateway, then by name.
			Ports: []api.Port{gw, client, peer, web}},
		Endpoints: []Endpoint{{RoleWeb, web}, {RoleClient, client}, {RolePeer, peer}},
		Fetch: Fetch{From: client.Name, URL: "http://198.18.100.2/", Status: "200 OK", Code: 200, Bytes: 116,
			Body: "hello from sydemo-web-ab12 (198.18.100.2), through the switchyard userspace switch\nyou came from x\n", Elapsed: 4390 * time.Microsecond},
		Pings: []Ping{
			{From: client.Name, To: netip.MustParseAddr("198.18.100.1"), ToName: "gateway", Sent: 2, RTTs: []time.Duration{1930 * time.Microsecond, 1070 * time.Microsecond}},
			{From: client.Name, To: netip.MustParseAddr("198.18.100.4"), ToName: peer.Name, Sent: 2, RTTs: []time.Duration{1850 * time.Microsecond}},
		},
		// As the daemon lists them: by port name.
		FDB: []api.FDBEntry{
			{MAC: gw.MAC, Port: "gateway", Type: "static"},
			{MAC: client.MAC, Port: client.Name, Type: "learned"},
			{MAC: peer.MAC, Port: peer.Name, Type: "learned"},
			{MAC: web.MAC, Port: web.Name, Type: "learned"},
		},
	}
}

// TestPrint pins the report's layout: sections in order, the gateway then
// the endpoints in role order, columns aligned, failures marked.
func TestPrint(t *testing.T) {
	var b bytes.Buffer
	if err := Print(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	want := `network    demo (bridge)  subnet 198.18.100.0/24  gateway 198.18.100.1 (f2:0d:51:d9:11:d9, answered by the switch)

endpoints
  ROLE    NAMESPACE           KIND  IFNAME  IPV4             MAC
  web     sydemo-web-ab12     veth  eth0    198.18.100.2/24  be:2f:6c:99:9f:fb
  client  sydemo-client-ab12  veth  eth0    198.18.100.3/24  c6:3a:20:03:69:d0
  peer    sydemo-peer-ab12    tap   eth0    198.18.100.4/24  aa:1b:24:eb:3c:a1

http       GET http://198.18.100.2/ from sydemo-client-ab12: 200 OK, 116 bytes in 4.39 ms
           "hello from sydemo-web-ab12 (198.18.100.2), through the switchyard userspace switch"

ping       from sydemo-client-ab12
  198.18.100.1 (gateway)           2/2 replies  rtt 1.93 ms, 1.07 ms
  198.18.100.4 (sydemo-peer-ab12)  1/2 replies  rtt 1.85 ms  FAILED

MAC table
  MAC                PORT                TYPE
  f2:0d:51:d9:11:d9  gateway             static
  be:2f:6c:99:9f:fb  sydemo-web-ab12     learned
  c6:3a:20:03:69:d0  sydemo-client-ab12  learned
  aa:1b:24:eb:3c:a1  sydemo-peer-ab12    learned

per-port counters (frames)
  PORT                KIND     RX  TX  FLOODED  DROPS
  gateway             gateway  3   6   4        0
  sydemo-web-ab12     veth     6   9   4        0
  sydemo-client-ab12  veth     12  13  1        0
  sydemo-peer-ab12    tap      4   5   3        3 (malformed 1, no-route 2)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("Print (-want +got):\n%s", diff)
	}
}

func TestPrintFailures(t *testing.T) {
	rep := sampleReport()
	rep.Fetch = Fetch{From: "c", URL: "http://198.18.100.2/", Err: errors.New("dial tcp 198.18.100.2:80: i/o timeout"), Elapsed: 5 * time.Second}
	rep.Pings[0] = Ping{From: "c", To: netip.MustParseAddr("198.18.100.1"), ToName: "gateway", Err: errors.New("opening an ICMP socket in c: denied")}
	rep.FDB = nil
	var b bytes.Buffer
	if err := Print(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"http       GET http://198.18.100.2/ from c: FAILED after 5.00 s: dial tcp 198.18.100.2:80: i/o timeout\n",
		"  198.18.100.1 (gateway)           FAILED: opening an ICMP socket in c: denied\n",
		"MAC table\n  (empty)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestOK(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"fetch 200", Fetch{Code: 200, Bytes: 1}.OK(), true},
		{"fetch 404", Fetch{Code: 404, Bytes: 1}.OK(), false},
		{"fetch empty", Fetch{Code: 200}.OK(), false},
		{"fetch error", Fetch{Code: 200, Bytes: 1, Err: errors.New("x")}.OK(), false},
		{"ping all", Ping{Sent: 2, RTTs: make([]time.Duration, 2)}.OK(), true},
		{"ping lost one", Ping{Sent: 2, RTTs: make([]time.Duration, 1)}.OK(), false},
		{"ping none sent", Ping{}.OK(), false},
		{"ping error", Ping{Sent: 1, RTTs: make([]time.Duration, 1), Err: errors.New("x")}.OK(), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: OK() = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestCheckSubnet(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"198.18.100.0/24", true},
		{"198.18.0.0/15", true},
		{"198.18.100.0/29", true},
		{"198.18.100.0/30", false},
		{"fd00:198:18::/64", false},
	} {
		err := CheckSubnet(netip.MustParsePrefix(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("CheckSubnet(%s) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestEcho(t *testing.T) {
	b := make([]byte, echoLen)
	encodeEcho(b, icmpEchoRequest, 0x1234, 7)
	// The checksum of the whole message, its own field included, folds
	// to zero; check the field against a hand computation too.
	typ, id, seq, ok := decodeEcho(b)
	if !ok || typ != icmpEchoRequest || id != 0x1234 || seq != 7 {
		t.Fatalf("decodeEcho(encodeEcho(8, 0x1234, 7)) = %d, %#x, %d, %v", typ, id, seq, ok)
	}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		if i == 2 {
			continue
		}
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if got, want := uint16(b[2])<<8|uint16(b[3]), ^uint16(sum); got != want {
		t.Errorf("checksum field %#04x, want %#04x", got, want)
	}
	b[9] ^= 0xff
	if _, _, _, ok := decodeEcho(b); ok {
		t.Errorf("decodeEcho accepted a corrupted message")
	}
	if _, _, _, ok := decodeEcho(b[:7]); ok {
		t.Errorf("decodeEcho accepted a 7-byte message")
	}
}
