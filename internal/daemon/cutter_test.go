package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// fakeCutter records the cuts asked of it; a cut of a backend in block
// waits until released (or cancelled); fail makes the next cuts fail.
type fakeCutter struct {
	mu      sync.Mutex
	cuts    []netip.AddrPort
	found   []dataplane.BackendCut
	block   map[netip.AddrPort]chan struct{}
	fail    int
	started chan netip.AddrPort
}

func (f *fakeCutter) CutBackend(ctx context.Context, service, backend netip.AddrPort, _ dataplane.CutOptions) (dataplane.CutReport, error) {
	f.mu.Lock()
	f.cuts = append(f.cuts, backend)
	ch := f.block[backend]
	fail := f.fail > 0
	if fail {
		f.fail--
	}
	f.mu.Unlock()
	if f.started != nil {
		f.started <- backend
	}
	rep := dataplane.CutReport{BackendCut: dataplane.BackendCut{Service: service, Backend: backend}, Found: 10}
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	if fail {
		return rep, errors.New("netlink: no buffer space")
	}
	rep.Cut = 10
	return rep, nil
}

func (f *fakeCutter) SurveyServices(context.Context, []netip.AddrPort) ([]dataplane.BackendCut, error) {
	return f.found, nil
}

func (f *fakeCutter) asked() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cuts)
}

// cutterRig runs a flowCutter on a fake; reports collects what it said.
type cutterRig struct {
	t       *testing.T
	fake    *fakeCutter
	c       *flowCutter
	dp      cuttingDatapath
	reports chan string
}

var (
	cutSvc = netip.MustParseAddrPort("198.18.110.100:6443")
	cutB   = map[string]netip.AddrPort{
		"cp1": netip.MustParseAddrPort("198.18.110.11:6443"),
		"cp2": netip.MustParseAddrPort("198.18.110.12:6443"),
		"cp3": netip.MustParseAddrPort("198.18.110.13:6443"),
	}
)

func newCutterRig(t *testing.T, fake *fakeCutter) *cutterRig {
	r := &cutterRig{t: t, fake: fake, reports: make(chan string, 16)}
	r.c = newFlowCutter(slog.New(slog.DiscardHandler), fake, func(rep dataplane.CutReport, name string, err error) {
		msg := name + " ok"
		if err != nil {
			msg = name + " failed"
		}
		r.reports <- msg
	})
	r.c.retryBase = 10 * time.Millisecond
	r.dp = cuttingDatapath{datapath: &fakeDatapath{log: &callLog{}}, cutter: r.c}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.c.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// reconcile programs a desired state with the named backends healthy
// (and drained); it must not wait for any cut.
func (r *cutterRig) reconcile(healthy, drain []string) {
	r.t.Helper()
	want := dataplane.Desired{VIPs: []dataplane.ServiceVIP{{Addr: cutSvc.Addr(), Port: cutSvc.Port()}}, Healthy: map[string]bool{}, Drain: map[string]bool{}}
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		want.Backends = append(want.Backends, dataplane.Backend{Name: n, Addr: cutB[n]})
	}
	for _, n := range healthy {
		want.Healthy[n] = true
	}
	for _, n := range drain {
		want.Drain[n] = true
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := r.dp.Reconcile(context.Background(), want); err != nil {
			r.t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		r.t.Fatal("Reconcile waited for a cut")
	}
}

func (r *cutterRig) report(want string) {
	r.t.Helper()
	select {
	case got := <-r.reports:
		if got != want {
			r.t.Errorf("report %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no report, want %q", want)
	}
}

func (r *cutterRig) noReport() {
	r.t.Helper()
	select {
	case got := <-r.reports:
		r.t.Errorf("unexpected report %q", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestFlowCutterOffTheLoop: a cut that takes long does not hold the
// reconcile that asked for it; the cut of a backend that comes back is
// stopped; pending cuts are coalesced and one runs at a time.
func TestFlowCutterOffTheLoop(t *testing.T) {
	release := make(chan struct{})
	fake := &fakeCutter{block: map[netip.AddrPort]chan struct{}{cutB["cp1"]: release}, started: make(chan netip.AddrPort, 16)}
	r := newCutterRig(t, fake)
	r.reconcile([]string{"cp1", "cp2", "cp3"}, nil)
	r.reconcile([]string{"cp2", "cp3"}, nil) // cp1 dies: its cut blocks
	if got := <-fake.started; got != cutB["cp1"] {
		t.Fatalf("first cut %v, want cp1", got)
	}
	r.reconcile([]string{"cp3"}, nil) // cp2 dies while cp1's cut runs
	r.reconcile([]string{"cp3"}, nil) // again: coalesced
	select {
	case b := <-fake.started:
		t.Fatalf("cut of %v started while cp1's runs", b)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	r.report("cp1 ok")
	r.report("cp2 ok")
	if got := <-fake.started; got != cutB["cp2"] {
		t.Fatalf("second cut %v, want cp2", got)
	}
	r.noReport()
	if got := fake.asked(); !slices.Equal(got, []netip.AddrPort{cutB["cp1"], cutB["cp2"]}) {
		t.Errorf("cuts %v, want cp1 then cp2, once each", got)
	}

	// cp3 dies and comes back while its cut runs: the cut stops.
	fake.mu.Lock()
	fake.block[cutB["cp3"]] = make(chan struct{})
	fake.mu.Unlock()
	r.reconcile([]string{"cp1", "cp2", "cp3"}, nil)
	r.reconcile([]string{"cp1", "cp2"}, nil)
	if got := <-fake.started; got != cutB["cp3"] {
		t.Fatalf("cut %v, want cp3", got)
	}
	r.reconcile([]string{"cp1", "cp2", "cp3"}, nil)
	r.noReport() // a stopped cut is logged, not reported as an event
	// ... and is cut when it dies again (it may hold flows).
	close(fake.block[cutB["cp3"]])
	r.reconcile([]string{"cp1", "cp2"}, nil)
	r.report("cp3 ok")
}

// TestFlowCutterDrainKeeps: a draining backend is not cut; a pending cut
// of a backend that starts draining is dropped.
func TestFlowCutterDrainKeeps(t *testing.T) {
	release := make(chan struct{})
	fake := &fakeCutter{block: map[netip.AddrPort]chan struct{}{cutB["cp1"]: release}, started: make(chan netip.AddrPort, 16)}
	r := newCutterRig(t, fake)
	r.reconcile([]string{"cp1", "cp2", "cp3"}, nil)
	r.reconcile([]string{"cp3"}, nil) // cp1 and cp2 die; cp1's cut blocks
	<-fake.started
	r.reconcile([]string{"cp3"}, []string{"cp2"}) // cp2 drains before its cut ran
	close(release)
	r.report("cp1 ok")
	r.noReport()
	if got := fake.asked(); !slices.Equal(got, []netip.AddrPort{cutB["cp1"]}) {
		t.Errorf("cuts %v, want cp1 only", got)
	}
}

// TestFlowCutterSurveyAndRetry: flows an earlier process left to a
// backend that is dead now are cut after the survey; a failed cut is tried
// again while the backend stays dead.
func TestFlowCutterSurveyAndRetry(t *testing.T) {
	fake := &fakeCutter{found: []dataplane.BackendCut{{Service: cutSvc, Backend: cutB["cp3"]}}, fail: 1}
	r := newCutterRig(t, fake)
	r.reconcile([]string{"cp1", "cp2"}, nil)
	r.report("cp3 failed")
	r.report("cp3 ok")
	if got := fake.asked(); !slices.Equal(got, []netip.AddrPort{cutB["cp3"], cutB["cp3"]}) {
		t.Errorf("cuts %v, want cp3 twice", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 2840: "2,840", 37325: "37,325", 1234567: "1,234,567", -2840: "-2,840"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
