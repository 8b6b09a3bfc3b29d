package connsync

import (
	"testing"
	"time"
)

// BenchmarkOwnerBatch: the owner's cost per event from the event queue
// to a sealed-ready batch frame for one peer stream: peerStream.add (one
// waiting change per flow) and the writeLoop's take and encodeBatch. Four
// events per flow (a short connection's state changes), 64 flows a batch;
// one op is one batch of 256 events.
func BenchmarkOwnerBatch(b *testing.B) {
	s := &Sync{}
	p := newPeerStream(s, "peer")
	const flows, perFlow = 64, 4
	evs := make([]stamped, 0, flows*perFlow)
	now := time.Now()
	for st := range perFlow {
		for f := range flows {
			e := benchEntry(f)
			e.TCPState = uint8(3 + st)
			evs = append(evs, stamped{e: e, t: now})
		}
	}
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for _, e := range evs {
			p.add(e)
		}
		<-p.wake
		out := p.take()
		var err error
		if buf, err = encodeBatch(buf, uint64(i), out); err != nil {
			b.Fatal(err)
		}
		p.taken(out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}
