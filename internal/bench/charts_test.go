package bench

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// charts draws failover, survivors and rates as PNG and SVG into dir.
func (r *results) charts(dir string) error {
	for name, draw := range map[string]func() (*plot.Plot, error){
		"failover": r.failoverChart, "survivors": r.survivorsChart, "rates": r.ratesChart,
	} {
		p, err := draw()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, ext := range []string{"png", "svg"} {
			if err := p.Save(18*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, name+"."+ext)); err != nil {
				return err
			}
		}
	}
	return nil
}

// failoverChart: one lane per system, successful connects per 5 ms
// around the first usable link-down run's fault (at 0).
func (r *results) failoverChart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Owner link down at 0 s: successful connects per 5 ms"
	p.X.Label.Text = "seconds from the fault"
	p.X.Min, p.X.Max = -timelineBefore.Seconds(), 3.6
	var ticks []plot.Tick
	lane := 0
	for _, s := range r.Systems {
		var tl []int
		for _, fr := range s.Faults[faultLink] {
			if fr.Err == "" && len(fr.Timeline) > 0 {
				tl = fr.Timeline
				break
			}
		}
		if tl == nil {
			continue
		}
		base := float64(lane) * 2
		pts := make(plotter.XYs, 0, len(tl))
		for i, n := range tl {
			x := (float64(i)*binWidth.Seconds() - timelineBefore.Seconds())
			if x > p.X.Max {
				break
			}
			full := float64(binWidth / failoverEvery) // every connect of the bin succeeded
			pts = append(pts, plotter.XY{X: x, Y: base + min(float64(n), full)/full*1.4})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PreStep
		l.Color = plotutil.Color(lane)
		l.Width = vg.Points(1.2)
		p.Add(l)
		ticks = append(ticks, plot.Tick{Value: base + 0.7, Label: s.Label})
		lane++
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = -0.3, float64(lane)*2
	p.Add(plotter.NewGrid())
	return p, nil
}

// survivorsChart: streams and in-flight requests that survived, per system.
func (r *results) survivorsChart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Through an owner power-off: % that survive"
	p.Y.Label.Text = "%"
	p.Y.Min, p.Y.Max = 0, 100
	var names []string
	var streams, inflight plotter.Values
	for _, s := range r.Systems {
		if s.Streams == nil && s.InFlight == nil {
			continue
		}
		names = append(names, s.Label)
		streams = append(streams, pct(s.Streams))
		inflight = append(inflight, pct(s.InFlight))
	}
	return groupedBars(p, names, []string{"streams", "in-flight requests"}, []plotter.Values{streams, inflight})
}

func pct(s *streamsResult) float64 {
	if s == nil || s.N == 0 {
		return 0
	}
	return 100 * float64(s.Survived) / float64(s.N)
}

// ratesChart: new TLS connections and kept-alive requests per second
// and bulk throughput, relative to direct.
func (r *results) ratesChart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Request rates and throughput relative to direct"
	p.Y.Label.Text = "× direct"
	d := r.system("direct")
	var names []string
	var nc, ka, bulk plotter.Values
	for _, s := range r.Systems {
		if s.NewConns == nil || s.KeptAlive == nil || d == nil || d.NewConns == nil || d.KeptAlive == nil {
			continue
		}
		names = append(names, s.Label)
		nc = append(nc, ratio(rate(s.NewConns), rate(d.NewConns)))
		ka = append(ka, ratio(rate(s.KeptAlive), rate(d.KeptAlive)))
		var b float64
		if s.Bulk != nil && d.Bulk != nil && s.Bulk.Err == "" {
			b = ratio(s.Bulk.Gbps, d.Bulk.Gbps)
		}
		bulk = append(bulk, b)
	}
	p.Y.Min = 0
	return groupedBars(p, names, []string{"new TLS connections/s", "kept-alive requests/s", "bulk throughput (iperf3)"}, []plotter.Values{nc, ka, bulk})
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// groupedBars adds one bar group per series, names on the X axis.
func groupedBars(p *plot.Plot, names, series []string, vals []plotter.Values) (*plot.Plot, error) {
	if len(names) == 0 {
		return p, nil
	}
	w := vg.Points(14)
	for i, v := range vals {
		bars, err := plotter.NewBarChart(v, w)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(vals)-1)/2)
		p.Add(bars)
		p.Legend.Add(series[i], bars)
	}
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.7, float64(len(names))-0.3
	p.Y.Max *= 1.3
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = -0.9, -0.2
	p.X.Tick.Label.Font.Size = vg.Points(7)
	return p, nil
}
