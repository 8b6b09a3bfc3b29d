package lab

import (
	"fmt"
	"slices"
	"testing"

	"github.com/epconsole/epconsole/probes"
)

func TestEtcdStopTargets(t *testing.T) {
	three := []string{"cp1", "cp2", "cp3"}
	for _, tc := range []struct {
		name    string
		members []string
		want    []string
	}{
		{FaultEtcdStopOne, three, []string{"cp3"}},
		{FaultEtcdQuorumLost, three, []string{"cp2", "cp3"}},
		{FaultEtcdStopOne, three[:2], []string{"cp2"}},
		{FaultEtcdQuorumLost, three[:2], []string{"cp2"}},
		{FaultEtcdStopOne, three[:1], []string{"cp1"}},
		{FaultEtcdQuorumLost, three[:1], []string{"cp1"}},
		{FaultEtcdQuorumLost, nil, nil},
	} {
		if got := EtcdStopTargets(tc.name, tc.members); !slices.Equal(got, tc.want) {
			t.Errorf("%s of %v: %v, want %v", tc.name, tc.members, got, tc.want)
		}
	}
}

// TestEtcdVerdict: the arithmetic the drill texts quote agrees with the
// etcd check's own judge (probes.EtcdQuorum) for every lab size, with the
// stopped members unreachable and the others following a leader.
func TestEtcdVerdict(t *testing.T) {
	exit := map[probes.Severity]int{probes.OK: 0, probes.Warning: 1, probes.Critical: 2}
	for n := 1; n <= MaxEtcdMembers; n++ {
		for stopped := 0; stopped <= n; stopped++ {
			running, quorum, tol, code := EtcdVerdict(n, stopped)
			var r probes.EtcdReport
			for i := 0; i < n; i++ {
				m := probes.EtcdMember{ID: fmt.Sprint(i + 1), Name: fmt.Sprintf("cp%d", i+1), ClientURLs: []string{"https://x"}}
				switch {
				case i >= n-stopped:
					m.Error = "connection refused"
				case running >= quorum:
					m.Reachable, m.Leader = true, "1"
				default:
					m.Reachable = true // no quorum: no leader
				}
				r.Members = append(r.Members, m)
			}
			if stopped == n {
				r = probes.EtcdReport{ListError: "connection refused"} // nobody answers the member list
			}
			v, _ := probes.EtcdQuorum(r)
			if running < quorum && (v.Healthy != 0 || v.Tolerance != 0) {
				t.Errorf("%d members, %d stopped: without quorum the check says %+v, want 0 healthy", n, stopped, v)
			}
			if code != exit[v.Severity] {
				t.Errorf("%d members, %d stopped: exit %d, the etcd check says %s", n, stopped, code, v.Severity)
			}
			if running >= quorum && (running != v.Healthy || quorum != v.Quorum || tol != v.Tolerance) {
				t.Errorf("%d members, %d stopped: running %d quorum %d tolerance %d; the etcd check says %+v", n, stopped, running, quorum, tol, v)
			}
		}
	}
}
