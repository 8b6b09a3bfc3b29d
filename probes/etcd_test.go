package probes_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// TestEtcdCluster runs one real 3-member cluster through its cases in
// order: healthy, NOSPACE alarm, one member stopped, two stopped.
func TestEtcdCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded etcd cluster")
	}
	cl := probetest.StartEtcd(t, netip.MustParseAddr("127.0.3.21"), 3)
	cl.MakeLeader(t, 0)
	opts := probes.EtcdOptions{Endpoints: cl.ClientURLs, TLS: cl.ClientTLS, Timeout: time.Second}
	check := func(t *testing.T) probes.EtcdReport {
		t.Helper()
		start := time.Now()
		r := probes.Etcd(context.Background(), opts)
		// Bounded: stopped members cost at most one timeout each, in parallel.
		if d := time.Since(start); d > 4*opts.Timeout {
			t.Errorf("etcd check took %v with a %v timeout", d, opts.Timeout)
		}
		return r
	}
	expect := func(t *testing.T, r probes.EtcdReport, healthy, tolerance int, leader string, sev probes.Severity, want []string) {
		t.Helper()
		v := r.Verdict
		if v.Members != 3 || v.Quorum != 2 || v.Healthy != healthy || v.Tolerance != tolerance || v.Leader != leader || v.Severity != sev {
			t.Errorf("verdict %+v; want 3 members, quorum 2, healthy %d, tolerance %d, leader %q, %v", v, healthy, tolerance, leader, sev)
		}
		if got := codes(r.Findings); !slices.Equal(got, want) {
			t.Errorf("findings %v, want %v", got, want)
		}
		for _, f := range r.Findings {
			t.Logf("%s", f.Line())
		}
	}

	t.Run("healthy", func(t *testing.T) {
		r := check(t)
		expect(t, r, 3, 1, "etcd1", probes.OK, nil)
		for i, m := range r.Members {
			if !m.Reachable || m.Version == "" || m.RaftTerm == 0 || m.RaftIndex == 0 || m.DBSize == 0 || m.Leader == "" {
				t.Errorf("member %d status incomplete: %+v", i, m)
			}
			if m.IsLeader != (m.Name == "etcd1") {
				t.Errorf("%s is_leader = %v", m.Name, m.IsLeader)
			}
		}
		if len(r.Alarms) != 0 || r.AlarmError != "" {
			t.Errorf("alarms %v %q", r.Alarms, r.AlarmError)
		}
	})

	t.Run("nospace-alarm", func(t *testing.T) {
		cl.Alarm(t, 1, true)
		r := check(t)
		expect(t, r, 3, 1, "etcd1", probes.Critical, []string{"CRITICAL:alarm-nospace"})
		if len(r.Alarms) != 1 || r.Alarms[0].Alarm != "NOSPACE" || r.Alarms[0].Member != "etcd2" {
			t.Errorf("alarms %+v", r.Alarms)
		}
		cl.Alarm(t, 1, false)
		expect(t, check(t), 3, 1, "etcd1", probes.OK, nil)
	})

	t.Run("one-member-stopped", func(t *testing.T) {
		cl.Stop(2)
		r := check(t)
		expect(t, r, 2, 0, "etcd1", probes.Warning, []string{"WARNING:member-unreachable", "WARNING:no-tolerance"})
		if r.Members[2].Reachable || r.Members[2].Error == "" {
			t.Errorf("stopped member reported %+v", r.Members[2])
		}
	})

	t.Run("two-members-stopped", func(t *testing.T) {
		cl.Stop(1)
		// The survivor notices it lost the leader (check quorum) within
		// an election timeout; wait for it, bounded.
		var r probes.EtcdReport
		deadline := time.Now().Add(10 * time.Second)
		for {
			r = check(t)
			if r.Members[0].Leader == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		expect(t, r, 0, 0, "", probes.Critical, []string{
			"WARNING:member-no-leader", "WARNING:member-unreachable", "WARNING:member-unreachable",
			"CRITICAL:quorum-lost", "CRITICAL:no-leader"})
		if r.AlarmError == "" {
			t.Error("the alarm list needs quorum; expected it to fail")
		}
	})
}

func TestEtcdUnreachable(t *testing.T) {
	// A port nobody listens on.
	f := probetest.NewFixture(t)
	gone := f.Backend(t, "etcd", netip.MustParseAddr("127.0.3.29"), probetest.Refused)
	r := probes.Etcd(context.Background(), probes.EtcdOptions{Endpoints: []string{"https://" + gone.Addr.String()}, Timeout: 300 * time.Millisecond})
	if r.Verdict.Severity != probes.Critical || len(r.Findings) != 1 || r.Findings[0].Code != "etcd-unreachable" {
		t.Errorf("got %v %v", r.Verdict.Severity, codes(r.Findings))
	}
}
