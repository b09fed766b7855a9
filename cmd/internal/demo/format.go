package demo

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

// Print writes the report: the network, the endpoints, the fetch, the
// pings, the MAC table and the per-port counters, in a fixed layout (the
// gateway first, then the endpoints in role order).
func Print(w io.Writer, rep *Report) error {
	bw := bufio.NewWriter(w)
	n := rep.Network
	fmt.Fprintf(bw, "network    %s (%s)", n.Name, n.Driver)
	for _, s := range n.Subnets {
		fmt.Fprintf(bw, "  subnet %s", s.Subnet)
		if s.Gateway != "" {
			fmt.Fprintf(bw, "  gateway %s", s.Gateway)
		}
	}
	if n.GatewayMAC != "" {
		fmt.Fprintf(bw, " (%s, answered by the switch)", n.GatewayMAC)
	}
	fmt.Fprintln(bw)

	fmt.Fprintln(bw, "\nendpoints")
	tw := table(bw)
	fmt.Fprintln(tw, "  ROLE\tNAMESPACE\tKIND\tIFNAME\tIPV4\tMAC")
	for _, e := range rep.Endpoints {
		p := e.Port
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.Role, p.Netns, p.Kind, p.IfName, dash(p.IPv4), dash(p.MAC))
	}
	tw.Flush()

	f := rep.Fetch
	fmt.Fprintf(bw, "\nhttp       GET %s from %s: ", f.URL, f.From)
	if f.Err != nil {
		fmt.Fprintf(bw, "FAILED after %s: %v\n", ms(f.Elapsed), f.Err)
	} else {
		fmt.Fprintf(bw, "%s, %d bytes in %s\n", f.Status, f.Bytes, ms(f.Elapsed))
		fmt.Fprintf(bw, "           %q\n", f.FirstLine())
	}

	if len(rep.Pings) > 0 {
		fmt.Fprintf(bw, "\nping       from %s\n", rep.Pings[0].From)
		tw = table(bw)
		for _, p := range rep.Pings {
			fmt.Fprintf(tw, "  %s (%s)\t%s\n", p.To, p.ToName, pingResult(p))
		}
		tw.Flush()
	}

	order := portOrder(rep)
	fmt.Fprintln(bw, "\nMAC table")
	fdb := append([]api.FDBEntry(nil), rep.FDB...)
	sort.SliceStable(fdb, func(i, j int) bool {
		if oi, oj := order(fdb[i].Port), order(fdb[j].Port); oi != oj {
			return oi < oj
		}
		return fdb[i].MAC < fdb[j].MAC
	})
	if len(fdb) == 0 {
		fmt.Fprintln(bw, "  (empty)")
	} else {
		tw = table(bw)
		fmt.Fprintln(tw, "  MAC\tPORT\tTYPE")
		for _, e := range fdb {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.MAC, e.Port, e.Type)
		}
		tw.Flush()
	}

	fmt.Fprintln(bw, "\nper-port counters (frames)")
	ports := append([]api.Port(nil), n.Ports...)
	sort.SliceStable(ports, func(i, j int) bool { return order(ports[i].Name) < order(ports[j].Name) })
	tw = table(bw)
	fmt.Fprintln(tw, "  PORT\tKIND\tRX\tTX\tFLOODED\tDROPS")
	for _, p := range ports {
		c := p.Counters
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", p.Name, p.Kind, c.RxFrames, c.TxFrames, c.TxFlooded, drops(c.Drops))
	}
	tw.Flush()
	return bw.Flush()
}

// table returns a tabwriter for a section: left-aligned columns two
// spaces apart.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// portOrder returns the rank of a port name: the gateway, the endpoints in
// role order, then anything else.
func portOrder(rep *Report) func(string) int {
	rank := map[string]int{api.GatewayPort: 0}
	for i, e := range rep.Endpoints {
		rank[e.Port.Name] = i + 1
	}
	return func(name string) int {
		if r, ok := rank[name]; ok {
			return r
		}
		return len(rank) + 1
	}
}

func pingResult(p Ping) string {
	if p.Err != nil {
		return "FAILED: " + p.Err.Error()
	}
	s := fmt.Sprintf("%d/%d replies", len(p.RTTs), p.Sent)
	if len(p.RTTs) > 0 {
		rtts := make([]string, len(p.RTTs))
		for i, d := range p.RTTs {
			rtts[i] = ms(d)
		}
		s += "  rtt " + strings.Join(rtts, ", ")
	}
	if !p.OK() {
		s += "  FAILED"
	}
	return s
}

// drops formats the per-reason drop counters: the total, and the reasons
// when there are any.
func drops(m map[string]uint64) string {
	var total uint64
	reasons := make([]string, 0, len(m))
	for r, n := range m {
		if n == 0 {
			continue
		}
		total += n
		reasons = append(reasons, r+" "+strconv.FormatUint(n, 10))
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(reasons)
	return fmt.Sprintf("%d (%s)", total, strings.Join(reasons, ", "))
}

// ms formats a duration in milliseconds with two decimals, or in seconds
// from one second up.
func ms(d time.Duration) string {
	if d >= time.Second {
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
