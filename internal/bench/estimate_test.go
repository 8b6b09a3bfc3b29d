package bench

// The full mode's duration, estimated from a quick run's section
// timings: what depends on a run count is scaled by the full mode's
// count, what depends on a duration gets the difference added, the rest
// (lab set-up, backend failures) is taken as it was.

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"
)

// failoverRuns is the failover section's runs per system in p.
func (p suiteParams) failoverRuns() int {
	n := 0
	for _, m := range faultModes {
		n += p.runs(m)
	}
	return n
}

// estimateFull estimates the full mode's seconds from a quick run's
// results (0 when r is not a complete quick run).
func (r *results) estimateFull() float64 {
	if !r.Params.Quick || len(r.Params.Sections) > 0 || len(r.SectionSeconds) == 0 {
		return 0
	}
	q, f := r.Params, params(false)
	if q.Runs == 0 || q.LoadedRuns == 0 || q.LoadFor == 0 {
		return 0
	}
	add := func(d time.Duration) float64 { return d.Seconds() }
	total := r.SectionSeconds["setup"]
	for _, s := range r.Systems {
		for sec, v := range s.SectionSeconds {
			switch sec {
			case secRates:
				// Two loads, each LoadFor.
				total += v + 2*add(f.LoadFor-q.LoadFor)
			case secFailover:
				total += v * float64(f.failoverRuns()) / float64(q.failoverRuns())
			case secLoaded:
				total += v * float64(f.LoadedRuns) / float64(q.LoadedRuns)
			case secStreams:
				total += v + add(f.StreamFor-q.StreamFor)
			case secBulk:
				total += v + add(f.BulkFor-q.BulkFor)
			default:
				total += v
			}
		}
	}
	for sec, v := range r.SectionSeconds {
		switch sec {
		case secIdle, secIdle5:
			total += v + add(f.IdleFor-q.IdleFor)
		case secFalse:
			total += v + add(f.SoakFor-q.SoakFor)
		}
	}
	return total
}

// estimateText says the full mode's estimated duration, for a quick run.
func (r *results) estimateText() string {
	est := r.estimateFull()
	if est == 0 {
		return ""
	}
	f := params(false)
	sum := 0.0
	for _, v := range r.SectionSeconds {
		sum += v
	}
	return fmt.Sprintf("The full mode was not run here; estimated from these section timings: **%.0f min** (%d failover runs per system instead of %d, %d loaded runs per fault instead of %d, loads of %s, idle %s, soak %s; the lab set-up and backend failures as measured; the sections above add up to %.0f min).\n\n",
		est/60, f.failoverRuns(), r.Params.failoverRuns(), f.LoadedRuns, r.Params.LoadedRuns, f.LoadFor, f.IdleFor, f.SoakFor, sum/60)
}

// TestEstimateFull estimates the full mode from the committed quick run's
// results: more than the quick run took, within the full mode's bound.
func TestEstimateFull(t *testing.T) {
	b, err := os.ReadFile("../../docs/bench/results.json")
	if err != nil {
		t.Skip("no committed results:", err)
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Params.Quick {
		t.Skip("the committed results are not a quick run")
	}
	sum := 0.0
	for _, v := range r.SectionSeconds {
		sum += v
	}
	est := r.estimateFull()
	t.Logf("quick sections %.0f s, full mode estimated %.0f s (%.1f min)", sum, est, est/60)
	if est <= sum || est > 45*60 {
		t.Errorf("estimate %.0f s: want more than the quick run's %.0f s and at most 45 min", est, sum)
	}
	if txt := r.estimateText(); txt == "" {
		t.Error("no estimate text for a complete quick run")
	}
	r.Params.Sections = []string{secRates}
	if r.estimateFull() != 0 {
		t.Error("an estimate for a run limited by --only")
	}
}
