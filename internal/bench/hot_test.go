package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
)

// electView is a settled cluster of n peers: all fresh and eligible, n0
// the owner at epoch 7, every member seeing three healthy backends.
func electView(n int) cluster.View {
	v := cluster.View{Self: "n0", Taken: time.Now()}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		v.Peers = append(v.Peers, name)
		v.Members = append(v.Members, cluster.Member{
			Name: name, Configured: true, State: cluster.StateAlive, Fresh: true,
			Meta:     cluster.Meta{Name: name, Priority: 200 - i, Eligible: true, Preempt: true, Owner: "n0", Epoch: 7, Digest: "abc123", Version: "bench"},
			Backends: []cluster.BackendView{{Name: "cp1", State: "up"}, {Name: "cp2", State: "up"}, {Name: "cp3", State: "up"}},
		})
	}
	return v
}

// BenchmarkElect is the owner election the daemon runs on every decision
// tick, for 3 and 5 peers.
func BenchmarkElect(b *testing.B) {
	for _, n := range []int{3, 5} {
		v := electView(n)
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var d cluster.Decision
			for b.Loop() {
				d = cluster.Elect(v, "n1")
			}
			if d.Owner != "n0" {
				b.Fatalf("Elect chose %q", d.Owner)
			}
		})
	}
}

// TestElectView keeps the benchmark honest: its view elects the owner it
// describes.
func TestElectView(t *testing.T) {
	for _, n := range []int{3, 5} {
		if d := cluster.Elect(electView(n), "n1"); d.Owner != "n0" {
			t.Errorf("%d peers: Elect chose %q, want n0 (%+v)", n, d.Owner, d)
		}
	}
}
