package bench

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// plotTitles are the panel titles, shorter than the table's.
var plotTitles = map[string]string{
	TestTCP:     "TCP, 1 stream",
	TestTCP4:    "TCP, 4 streams",
	TestPPS64:   "64-byte frames, full offered load",
	TestPPS1518: "1518-byte frames, full offered load",
	TestNDR64:   "64-byte frames, loss < 0.1%",
	TestNDR1518: "1518-byte frames, loss < 0.1%",
	TestRR:      "UDP round trip p50 (lower is better)",
	TestConn:    "New TCP connections, A to B (NAT: DNAT)",
	TestConnOut: "New TCP connections, B to A (NAT: masquerade)",
}

// plotUnits label the y axes of the headline metrics.
var plotUnits = map[string]string{
	MetricGbps: "Gbit/s", MetricRxPPS: "kpps at B", MetricNDRPPS: "kpps", MetricP50: "microseconds",
	MetricConnPS: "connections/s",
}

// WritePlot draws the report to a file, SVG or PNG by its extension: one
// panel per test with its headline metric, a bar per peer at the median,
// a whisker from the lowest to the highest rep and a dot per rep.
func (r *Report) WritePlot(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".svg" && ext != ".png" {
		return fmt.Errorf("bench: plot %s: want a .svg or .png file", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	werr := r.writePlot(f, ext)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("bench: plot %s: %w", path, werr)
	}
	return nil
}

func (r *Report) writePlot(w io.Writer, ext string) error {
	var plots []*plot.Plot
	for _, t := range r.Tests {
		p, err := r.panel(t)
		if err != nil {
			return err
		}
		if p != nil {
			plots = append(plots, p)
		}
	}
	if len(plots) == 0 {
		return fmt.Errorf("no figures to plot")
	}
	const cols = 2
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	width, height := 11*vg.Inch, vg.Length(rows)*3.2*vg.Inch
	var c vg.CanvasWriterTo
	switch ext {
	case ".svg":
		c = vgsvg.New(width, height)
	default:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110),
			vgimg.UseBackgroundColor(color.White))}
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	_, err := c.WriteTo(w)
	return err
}

// panel is one test's chart, nil when no peer has a figure for it.
func (r *Report) panel(test string) (*plot.Plot, error) {
	var m Metric
	for _, x := range TestMetrics[test] {
		if x.Headline {
			m = x
		}
	}
	p := plot.New()
	p.Title.Text = plotTitles[test]
	if cmp := r.plotRatios(test, m.Name); cmp != "" {
		p.Title.Text += "\n" + cmp
	}
	p.Y.Label.Text = plotUnits[m.Name]
	p.Y.Min = 0
	var names []string
	var labels plotter.XYLabels
	any := false
	for _, peer := range r.Peers {
		if _, skipped := r.Skipped[peer]; skipped {
			continue
		}
		x := float64(len(names))
		names = append(names, peer)
		sp, ok := r.Summary(test, peer, m.Name)
		if !ok {
			continue
		}
		any = true
		bar, err := plotter.NewBarChart(plotter.Values{sp.Median * m.Scale}, vg.Points(28))
		if err != nil {
			return nil, err
		}
		bar.XMin = x
		bar.Color = plotutil.Color(len(names) - 1)
		bar.LineStyle.Width = 0
		p.Add(bar)
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: sp.Max * m.Scale})
		labels.Labels = append(labels.Labels, fmt.Sprintf("%.*f", m.Prec, sp.Median*m.Scale))
		if sp.N > 1 && sp.Max > sp.Min {
			eb, err := plotter.NewYErrorBars(spreadBar{x: x, sp: sp, scale: m.Scale})
			if err != nil {
				return nil, err
			}
			p.Add(eb)
		}
		var pts plotter.XYs
		for _, s := range r.Samples {
			if v, ok := s.Metrics[m.Name]; ok && s.Peer == peer && s.Test == test && s.Error == "" {
				pts = append(pts, plotter.XY{X: x, Y: v * m.Scale})
			}
		}
		if len(pts) > 1 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle.Radius = vg.Points(2)
			p.Add(sc)
		}
	}
	if !any {
		return nil, nil
	}
	if len(labels.XYs) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
		}
		l.Offset = vg.Point{Y: vg.Points(4)}
		p.Add(l)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, nil
}

// plotRatios says, under a panel's title, what each bar is compared with
// when the NAT pair shares the chart with the L2 peers: the median ratios
// to the kernel bridge and, for the NAT pair, to the kernel's NAT.
func (r *Report) plotRatios(test, metric string) string {
	var parts []string
	for _, x := range r.Ratios {
		if x.Test == test && x.Metric == metric && (x.To == PeerKernel || x.To == PeerNATKernel) {
			parts = append(parts, fmt.Sprintf("%s/%s %.2f", x.Of, x.To, x.Median))
		}
	}
	var lines []string
	for len(parts) > 0 {
		n := min(3, len(parts))
		lines = append(lines, strings.Join(parts[:n], ", "))
		parts = parts[n:]
	}
	return strings.Join(lines, "\n")
}

// spreadBar is one whisker from a spread's minimum to its maximum.
type spreadBar struct {
	x     float64
	sp    Spread
	scale float64
}

func (s spreadBar) Len() int                  { return 1 }
func (s spreadBar) XY(int) (float64, float64) { return s.x, s.sp.Median * s.scale }
func (s spreadBar) YError(int) (float64, float64) {
	return (s.sp.Median - s.sp.Min) * s.scale, (s.sp.Max - s.sp.Median) * s.scale
}

// ProgressBar returns a Config.Progress function that keeps one line on w,
// a terminal, up to date: a bar, the count of tests done, and what runs.
// It ends the line when the run is done.
func ProgressBar(w io.Writer) func(Progress) {
	const width = 30
	last := ""
	return func(p Progress) {
		if p.Total <= 0 {
			return
		}
		fill := p.Done * width / p.Total
		bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
		line := fmt.Sprintf("[%s] %d/%d", bar, p.Done, p.Total)
		if p.Peer != "" {
			line += fmt.Sprintf("  rep %d/%d  %s %s", p.Rep, p.Reps, p.Peer, p.Test)
		}
		if line == last {
			return
		}
		pad := ""
		if n := len(last) - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		last = line
		fmt.Fprintf(w, "\r%s%s", line, pad)
		if p.Peer == "" {
			fmt.Fprintln(w)
		}
	}
}
