package e2e

import (
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// BenchmarkDeNewTLSConns measures new TLS connections per second (one
// HTTP/1.1 GET each, no keep-alive, no resumption, 4 in flight) from the
// client through the VIP and, in the same iteration, straight to the
// backends, and reports both rates and their ratio. Each iteration makes
// three runs of 100 connections per path (through the VIP, then to b1, b2,
// b3 directly; the order alternates between iterations); a rate is the
// answered connections over the runs' own elapsed time, so starting the
// client processes is not counted. Bound it with -benchtime, e.g.
//
//	go test -run '^$' -bench DeNewTLSConns -benchtime 3x ./internal/e2e/
func BenchmarkDeNewTLSConns(b *testing.B) {
	e := newEnv(b, "deb", labOpts{}, 10*time.Minute)
	e.setupLB(e.lbs[0])
	const perRun = 100
	var direct, vip []benchRun
	for _, h := range e.backends {
		s := e.standins[h.Name()]
		direct = append(direct, benchRun{name: h.Name(), opts: netlab.ClientOpts{Target: s.Addr4, Count: perRun, Concurrency: 4}})
		vip = append(vip, benchRun{name: "vip", opts: netlab.ClientOpts{Target: e.vip4, Count: perRun, Concurrency: 4}})
	}
	var vipOK, directOK int
	var vipTime, directTime time.Duration
	measure := func(ts []benchRun) (int, time.Duration) {
		ok, el := 0, time.Duration(0)
		for _, tg := range ts {
			r, err := e.cl.RunClient(e.ctx, tg.opts)
			if err != nil {
				b.Fatal(err)
			}
			if r.Failed != 0 || r.OK != perRun {
				b.Fatalf("%s: %s", tg.name, summary(r))
			}
			ok, el = ok+r.OK, el+r.Elapsed
		}
		return ok, el
	}
	i := 0
	for b.Loop() {
		first, second := vip, direct
		if i%2 == 1 {
			first, second = direct, vip
		}
		ok1, t1 := measure(first)
		ok2, t2 := measure(second)
		if i%2 == 1 {
			ok1, t1, ok2, t2 = ok2, t2, ok1, t1
		}
		vipOK, vipTime, directOK, directTime = vipOK+ok1, vipTime+t1, directOK+ok2, directTime+t2
		i++
	}
	vipRate := float64(vipOK) / vipTime.Seconds()
	directRate := float64(directOK) / directTime.Seconds()
	b.ReportMetric(vipRate, "vip-conns/s")
	b.ReportMetric(directRate, "direct-conns/s")
	b.ReportMetric(vipRate/directRate, "vip/direct")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d iterations: through the VIP %d connections at %.0f/s, direct %d at %.0f/s, ratio %.3f",
		i, vipOK, vipRate, directOK, directRate, vipRate/directRate)
}

// benchRun is one client run of the benchmark.
type benchRun struct {
	name string
	opts netlab.ClientOpts
}
