package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/switchyard-net/switchyard/switch/frame"
)

func fixedClock() func() time.Time {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return func() time.Time { return t0 }
}

func TestMirrorActiveHook(t *testing.T) {
	var events []bool
	m := NewMirror(&MirrorConfig{OnActive: func(on bool) { events = append(events, on) }})
	a, err := m.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Start(nil)
	a.Close()
	b.Close()
	c, _ := m.Start(nil)
	m.Close("network removed")
	if got := len(events); got != 4 || !events[0] || events[1] || !events[2] || events[3] {
		t.Errorf("OnActive calls = %v, want [true false true false]", events)
	}
	var rec Record
	err = c.Read(context.Background(), &rec)
	var ee *EndError
	if !errors.As(err, &ee) || ee.Reason != "network removed" {
		t.Errorf("Read after Close = %v, want the end reason", err)
	}
	if _, err := m.Start(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Start on a closed mirror = %v", err)
	}
}

func TestCaptureSelects(t *testing.T) {
	fr := filterFrames(t)
	m := NewMirror(&MirrorConfig{Clock: fixedClock()})
	flt, _ := Compile("tcp")
	all, _ := m.Start(nil)
	onB, _ := m.Start(&Config{Port: "b"})
	tcp, _ := m.Start(&Config{Filter: flt, SnapLen: 20})
	m.Inbound("a", fr["tcp4"], frame.VNetHdr{})
	m.Outbound("b", fr["udp4"], frame.VNetHdr{})
	m.Dropped("b", false, "same_port", fr["tcp6"])
	m.Note("a", true, "post-nat", fr["arp"], frame.VNetHdr{})

	read := func(c *Capture) []string {
		c.Close()
		var out []string
		var r Record
		for c.Read(context.Background(), &r) == nil {
			out = append(out, r.Port+" "+r.Dir.String()+" "+r.Comment()+" "+itoa(len(r.Data))+"/"+itoa(r.OrigLen))
			if r.Time != fixedClock()().UnixNano() {
				t.Errorf("time %d", r.Time)
			}
		}
		return out
	}
	l := func(s ...string) string { return strings.Join(s, "|") }
	if got, want := l(read(all)...), l("a in  60/60", "b out  60/60", "b in dropped: same_port 79/79", "a out post-nat 60/60"); got != want {
		t.Errorf("all:\n got %s\nwant %s", got, want)
	}
	if got, want := l(read(onB)...), l("b out  60/60", "b in dropped: same_port 79/79"); got != want {
		t.Errorf("port b:\n got %s\nwant %s", got, want)
	}
	if got, want := l(read(tcp)...), l("a in  20/60", "b in dropped: same_port 20/79"); got != want {
		t.Errorf("tcp, snap 20:\n got %s\nwant %s", got, want)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestCaptureLossy fills a small ring with nobody reading: the frames that
// do not fit are counted as lost, the producer never waits.
func TestCaptureLossy(t *testing.T) {
	m := NewMirror(nil)
	c, _ := m.Start(&Config{Slots: 8})
	data := filterFrames(t)["udp4"]
	for i := 0; i < 20; i++ {
		data[len(data)-1] = byte(i)
		m.Inbound("a", data, frame.VNetHdr{})
	}
	if c.Taken() != 8 || c.Lost() != 12 {
		t.Fatalf("taken %d lost %d, want 8 and 12", c.Taken(), c.Lost())
	}
	var r Record
	for i := 0; i < 8; i++ {
		if !c.TryRead(&r) || r.Data[len(r.Data)-1] != byte(i) {
			t.Fatalf("record %d: %v", i, r.Data)
		}
	}
	if c.TryRead(&r) {
		t.Fatal("a ninth record")
	}
	m.Inbound("a", data, frame.VNetHdr{}) // room again
	if !c.TryRead(&r) || c.Taken() != 9 {
		t.Fatalf("after reading, the ring takes frames again: taken %d", c.Taken())
	}
}

// TestCaptureConcurrent has several producers and one reader: every frame
// is either read or counted as lost, exactly once.
func TestCaptureConcurrent(t *testing.T) {
	m := NewMirror(nil)
	c, _ := m.Start(&Config{Slots: 64})
	const producers, each = 4, 5000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, 60)
			data[0] = byte(p)
			for i := 0; i < each; i++ {
				m.Inbound("a", data, frame.VNetHdr{})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); c.Close(); close(done) }()
	read := 0
	var r Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		err := c.Read(ctx, &r)
		if err != nil {
			var ee *EndError
			if !errors.As(err, &ee) {
				t.Fatal(err)
			}
			break
		}
		if len(r.Data) != 60 || r.Data[0] >= producers {
			t.Fatalf("bad record %v", r.Data[:2])
		}
		read++
	}
	<-done
	if uint64(read) != c.Taken() || c.Taken()+c.Lost() != producers*each {
		t.Errorf("read %d, taken %d, lost %d; want read = taken and taken+lost = %d", read, c.Taken(), c.Lost(), producers*each)
	}
}

// TestOfferAllocs: offering frames allocates nothing, with no capture, with
// a filtered one and with a full ring.
func TestOfferAllocs(t *testing.T) {
	data := filterFrames(t)["tcp4"]
	m := NewMirror(nil)
	if n := testing.AllocsPerRun(1000, func() { m.Inbound("a", data, frame.VNetHdr{}) }); n != 0 {
		t.Errorf("no capture: %v allocs", n)
	}
	flt, _ := Compile("tcp and host 198.18.70.2")
	c, _ := m.Start(&Config{Filter: flt, Slots: 4})
	defer c.Close()
	var r Record
	r.Data = make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(1000, func() {
		m.Inbound("a", data, frame.VNetHdr{})
		m.Dropped("a", false, "same_port", data)
		c.TryRead(&r)
	}); n != 0 {
		t.Errorf("filtered capture: %v allocs", n)
	}
	if c.Lost() == 0 {
		t.Errorf("the ring never filled; the full path went untested")
	}
}

// TestFinishesChecksum: a frame with a partial checksum is finished in the
// captured copy, the original is left alone.
func TestFinishesChecksum(t *testing.T) {
	data := build(t, pkt{vlan: -1, src: "198.18.70.2", dst: "198.18.70.3", proto: "udp", sp: 1, dp: 2})
	want := append([]byte(nil), data...)
	// Put the pseudo-header seed where the checksum was, as a sender with
	// offloads leaves it: 14 (eth) + 20 (ip) + 6 (udp csum offset).
	var p frame.Parsed
	p.Decode(data)
	seed := frame.PseudoHeaderSum(frame.ProtoUDP, p.SrcIP, p.DstIP, p.L3End-p.L4Off)
	data[40], data[41] = byte(seed>>8), byte(seed)
	orig := append([]byte(nil), data...)
	m := NewMirror(nil)
	c, _ := m.Start(nil)
	m.Inbound("a", data, frame.VNetHdr{Flags: frame.VNetNeedsCsum, CsumStart: 34, CsumOffset: 6})
	var r Record
	if !c.TryRead(&r) {
		t.Fatal("nothing captured")
	}
	if !bytes.Equal(r.Data, want) {
		t.Errorf("captured %x\nwant     %x", r.Data, want)
	}
	if !bytes.Equal(data, orig) {
		t.Errorf("the engine's frame was changed")
	}
}

// TestWriterRoundTrip writes records as pcapng, reads them back with
// gopacket's reader (and with tshark and tcpdump when installed).
func TestWriterRoundTrip(t *testing.T) {
	fr := filterFrames(t)
	recs := []Record{
		{Time: 1700000000123456789, Port: "red", Dir: In, Data: fr["icmp4"], OrigLen: len(fr["icmp4"])},
		{Time: 1700000000123456999, Port: "blue", Dir: Out, Data: fr["icmp4"], OrigLen: len(fr["icmp4"])},
		{Time: 1700000000200000000, Port: "late", Dir: In, Drop: "same_port", Data: fr["arp"], OrigLen: len(fr["arp"])},
		{Time: 1700000000300000000, Port: "gateway", Dir: Out, Note: "post-nat", Data: fr["tcp4"][:40], OrigLen: len(fr["tcp4"])},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterConfig{Network: "lan", Ports: []string{"gateway", "red", "blue"}, SnapLen: 2048, Filter: "ip or arp"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(3); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ifc, _ := r.Interface(ci.InterfaceIndex)
		dir := "?"
		if opts.Flags != nil {
			dir = map[pcapgo.NgEpbFlag]string{pcapgo.NgEpbFlagDirectionInbound: "in", pcapgo.NgEpbFlagDirectionOutbound: "out"}[opts.Flags.Direction]
		}
		got = append(got, strings.Join([]string{ifc.Name, dir, strings.Join(opts.Comments, ","), itoa(len(data)), itoa(ci.Length),
			itoa(int(ci.Timestamp.UnixNano() % 1e9))}, " "))
	}
	want := []string{"red in  60 60 123456789", "blue out  60 60 123456999", "late in dropped: same_port 60 60 200000000",
		"gateway out post-nat 40 60 300000000"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("read back:\n got %q\nwant %q", got, want)
	}
	if n := r.NInterfaces(); n != 4 {
		t.Errorf("%d interfaces, want 4 (three up front, one added)", n)
	}

	path := filepath.Join(t.TempDir(), "c.pcapng")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		cmd := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name",
			"-e", "frame.p2p_dir", "-e", "frame.comment", "-e", "frame.time_epoch", "-e", "_ws.col.Protocol")
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("tshark: %v\n%s", err, se.String())
		}
		want := "red\t1\t\t1700000000.123456789\tICMP\n" +
			"blue\t0\t\t1700000000.123456999\tICMP\n" +
			"late\t1\tdropped: same_port\t1700000000.200000000\tARP\n" +
			"gateway\t0\tpost-nat\t1700000000.300000000\tTCP\n"
		if so.String() != want {
			t.Errorf("tshark read:\n%s\nwant:\n%s", so.String(), want)
		}
		checkToolStderr(t, "tshark", se.String())
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		cmd := exec.Command("tcpdump", "-r", path, "-n", "--nano")
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("tcpdump: %v\n%s", err, se.String())
		}
		if n := strings.Count(so.String(), "\n"); n != 4 {
			t.Errorf("tcpdump printed %d lines:\n%s", n, so.String())
		}
		checkToolStderr(t, "tcpdump", se.String())
	}
}

// checkToolStderr fails t when a reader of the file said more than its
// usual banners.
func checkToolStderr(t *testing.T, tool, stderr string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l == "" || strings.HasPrefix(l, "reading from file") || strings.HasPrefix(l, "Running as user") {
			continue
		}
		t.Errorf("%s: %s", tool, l)
	}
}
