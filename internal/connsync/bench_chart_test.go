package connsync

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// lagSeries keeps every lag the peers measured with the time it was
// measured, for a chart of the lag over time.
type lagSeries struct {
	mu   sync.Mutex
	t0   time.Time
	at   []time.Duration
	lags []time.Duration
}

func (s *lagSeries) add(l time.Duration) {
	s.mu.Lock()
	s.at = append(s.at, time.Since(s.t0))
	s.lags = append(s.lags, l)
	s.mu.Unlock()
}

// reset starts the series again at now.
func (s *lagSeries) reset() {
	s.mu.Lock()
	s.t0, s.at, s.lags = time.Now(), s.at[:0], s.lags[:0]
	s.mu.Unlock()
}

// sorted returns the lags sorted.
func (s *lagSeries) sorted() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.lags)
	slices.Sort(out)
	return out
}

// chart writes lag.png and lag.svg into the directory named by
// EPCONSOLE_BENCH_SYNC_CHART (nothing when it is unset): p50, p99 and the
// maximum of each second of the churn, in milliseconds.
func (s *lagSeries) chart(t *testing.T, title string) {
	dir := os.Getenv("EPCONSOLE_BENCH_SYNC_CHART")
	if dir == "" {
		return
	}
	s.mu.Lock()
	buckets := map[int][]time.Duration{}
	last := 0
	for i, at := range s.at {
		sec := int(at / time.Second)
		buckets[sec] = append(buckets[sec], s.lags[i])
		last = max(last, sec)
	}
	s.mu.Unlock()
	var p50, p99, pmax plotter.XYs
	for sec := 0; sec <= last; sec++ {
		b := buckets[sec]
		if len(b) == 0 {
			continue
		}
		slices.Sort(b)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		x := float64(sec) + 0.5
		p50 = append(p50, plotter.XY{X: x, Y: ms(b[len(b)/2])})
		p99 = append(p99, plotter.XY{X: x, Y: ms(b[len(b)*99/100])})
		pmax = append(pmax, plotter.XY{X: x, Y: ms(b[len(b)-1])})
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds of churn"
	p.Y.Label.Text = "lag on the peers (ms)"
	p.Add(plotter.NewGrid())
	if err := plotutil.AddLines(p, "p50", p50, "p99", p99, "max", pmax); err != nil {
		t.Fatal(err)
	}
	p.Legend.Top = true
	for _, ext := range []string{"png", "svg"} {
		f := filepath.Join(dir, "sync-lag."+ext)
		if err := p.Save(18*vg.Centimeter, 9*vg.Centimeter, f); err != nil {
			t.Fatal(err)
		}
		t.Logf("chart: %s", f)
	}
}

// lagTitle names the chart's workload.
func lagTitle(flows, rate int) string {
	return fmt.Sprintf("connection sync: lag per second, %d flows, %d new and %d closed a second", flows, rate, rate)
}
