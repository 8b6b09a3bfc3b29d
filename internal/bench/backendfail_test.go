package bench

// Backend failure under load: new TLS connections through the VIP while
// one backend fails, its process killed or its host's link down; the
// failed requests and the rate in the next 10 s.

import (
	"fmt"
	"net/netip"
	"time"
)

// The backend failures, in the order they run: the link first (healed
// after), then the process (left dead: the bulk section wants cp2 and
// cp3 out of the way, and the lab ends after it).
const (
	backendLinkDown = "link-down"
	backendKilled   = "process-killed"
)

// The window of a backend failure run: the load runs backendBefore,
// then the backend fails, and the next backendAfter is what is reported.
const (
	backendBefore = 2 * time.Second
	backendAfter  = 10 * time.Second
	backendBin    = 100 * time.Millisecond
	// backendSettle bounds the wait after the link's heal: HAProxy's
	// `rise 2` at `inter 3s` takes the backend back within 6 s (the
	// section goes on as soon as every LB's HAProxy has logged it UP);
	// epconsole's probes (every 500 ms, 100 ms while it changes) within
	// 2 s.
	backendSettle = 7 * time.Second
	// proxyCheckInter is HAProxy's check interval (`inter 3s`) and a
	// little: a check started before the heal has ended after it.
	proxyCheckInter    = 3500 * time.Millisecond
	backendSettleProbe = 3 * time.Second
)

// backendFailRun is one backend failure under the load.
type backendFailRun struct {
	Fault   string `json:"fault"`
	Backend string `json:"backend"`
	// RateBefore is the successful requests per second before the fault
	// (from 0.5 s into the load), RateAfter in the backendAfter after it.
	RateBefore   float64 `json:"rate_before_per_s"`
	RateAfter    float64 `json:"rate_next_10s_per_s"`
	FailedBefore int     `json:"failed_before"`
	FailedAfter  int     `json:"failed_next_10s"`
	// WorstSecond is the fewest successful requests in one second of
	// the window after the fault.
	WorstSecond int `json:"worst_second_ok"`
	// FailingForMS is how long after the fault requests kept failing:
	// the end of the last bin with a failure (0: none failed).
	FailingForMS float64 `json:"failing_for_ms"`
	LoadStart    float64 `json:"load1_start"`
	LoadEnd      float64 `json:"load1_end"`
	Err          string  `json:"err,omitempty"`
	// Bins are the load's requests per backendBin, with the fault at
	// FaultAtMS from the load's start.
	FaultAtMS float64   `json:"fault_at_ms"`
	Bins      []loadBin `json:"bins,omitempty"`
}

// backendFailures runs both backend failures under the new-connection
// load through target.
func (s *stack) backendFailures(sys system, target netip.AddrPort, p suiteParams) []backendFailRun {
	var out []backendFailRun
	for _, f := range []struct{ fault, backend string }{{backendLinkDown, "cp3"}, {backendKilled, "cp2"}} {
		out = append(out, s.backendFailure(target, p, f.fault, f.backend))
		if f.fault == backendLinkDown {
			if sys.Proxy {
				// A check still under way at the heal may yet fail and
				// take the backend out; after one check interval none
				// is, and HAProxy's log says whether it is in or out.
				time.Sleep(proxyCheckInter)
				waited, ok := s.waitProxyState("UP", backendSettle-proxyCheckInter, f.backend)
				s.b.Logf("%s: HAProxy had %s back %s after the heal (every LB logged it: %v)", sys.Name, f.backend, (proxyCheckInter + waited).Round(100*time.Millisecond), ok)
			} else {
				time.Sleep(backendSettleProbe)
			}
		}
	}
	return out
}

// backendFailure is one run: the load, the fault after backendBefore,
// the load's end backendAfter later.
func (s *stack) backendFailure(target netip.AddrPort, p suiteParams, fault, backend string) backendFailRun {
	r := backendFailRun{Fault: fault, Backend: backend, LoadStart: load1()}
	h := s.lab.Host(backend)
	if h == nil {
		r.Err = "no backend host " + backend
		return r
	}
	d := backendBefore + backendAfter + 500*time.Millisecond
	job, err := s.startProbe(s.ctx, "load", loadArgs{Target: target.String(), CAFile: s.lab.CAFile(), Clients: p.LoadClients, Duration: d, New: true, Bin: backendBin})
	if err != nil {
		r.Err = err.Error()
		return r
	}
	time.Sleep(backendBefore)
	faultAt := time.Now()
	var ferr error
	switch fault {
	case backendLinkDown:
		ferr = h.SetCable(false)
	case backendKilled:
		if st := s.standins[backend]; st != nil {
			ferr = st.Kill()
		} else {
			ferr = fmt.Errorf("no stand-in on %s", backend)
		}
	}
	var lr loadResult
	err = job.result(d+30*time.Second, &lr)
	if fault == backendLinkDown {
		if herr := h.SetCable(true); herr != nil && ferr == nil {
			ferr = fmt.Errorf("heal: %w", herr)
		}
	}
	r.LoadEnd = load1()
	switch {
	case ferr != nil:
		r.Err = "fault: " + ferr.Error()
	case err != nil:
		r.Err = "client: " + err.Error()
		return r
	}
	r.fill(lr, time.Duration(faultAt.UnixNano()-lr.StartUnixNano))
	return r
}

// fill computes the run's figures from the load's bins, the fault
// faultAt after the load's start.
func (r *backendFailRun) fill(lr loadResult, faultAt time.Duration) {
	r.Bins, r.FaultAtMS = lr.Bins, float64(faultAt)/1e6
	warm := int(500 * time.Millisecond / backendBin)
	at := int(faultAt / backendBin)
	end := at + int(backendAfter/backendBin)
	okBefore := 0
	perSecond := map[int]int{}
	for i, b := range lr.Bins {
		switch {
		case i >= warm && i < at:
			okBefore += b.OK
			r.FailedBefore += b.Failed
		case i >= at && i < end:
			r.FailedAfter += b.Failed
			if b.Failed > 0 {
				r.FailingForMS = float64(time.Duration(i-at+1)*backendBin) / 1e6
			}
			perSecond[(i-at)*int(backendBin)/int(time.Second)] += b.OK
		}
	}
	if at > warm {
		r.RateBefore = float64(okBefore) / (float64(at-warm) * backendBin.Seconds())
	}
	okAfter := 0
	r.WorstSecond = -1
	for sec := range int(backendAfter / time.Second) {
		n := perSecond[sec]
		okAfter += n
		if r.WorstSecond < 0 || n < r.WorstSecond {
			r.WorstSecond = n
		}
	}
	r.RateAfter = float64(okAfter) / backendAfter.Seconds()
}
