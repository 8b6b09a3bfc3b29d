package probes

import (
	"slices"
	"testing"
)

// members builds a member list: "L" healthy leader, "F" healthy follower,
// "D" unreachable, "N" reachable without leader, "l" learner.
func members(spec string) []EtcdMember {
	var out []EtcdMember
	for i, c := range spec {
		m := EtcdMember{ID: string(rune('a' + i)), Name: "etcd" + string(rune('1'+i)), ClientURLs: []string{"https://x"}}
		switch c {
		case 'L':
			m.Reachable, m.Leader, m.IsLeader = true, m.ID, true
		case 'F':
			m.Reachable, m.Leader = true, "a"
		case 'D':
			m.Error = "connection refused"
		case 'N':
			m.Reachable, m.Errors = true, []string{"etcdserver: no leader"}
		case 'l':
			m.Learner, m.Reachable, m.Leader = true, true, "a"
		}
		out = append(out, m)
	}
	return out
}

func TestEtcdQuorum(t *testing.T) {
	tests := []struct {
		desc                               string
		report                             EtcdReport
		members, quorum, healthy, tolerate int
		leader                             string
		sev                                Severity
		codes                              []string
	}{
		{desc: "3 healthy", report: EtcdReport{Members: members("LFF")},
			members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: OK},
		{desc: "1 of 3 down: quorum kept, tolerance 0", report: EtcdReport{Members: members("LFD")},
			members: 3, quorum: 2, healthy: 2, tolerate: 0, leader: "etcd1", sev: Warning,
			codes: []string{"member-unreachable", "no-tolerance"}},
		{desc: "2 of 3 down: quorum lost, no leader", report: EtcdReport{Members: members("NDD")},
			members: 3, quorum: 2, healthy: 0, tolerate: 0, sev: Critical,
			codes: []string{"member-no-leader", "member-unreachable", "member-unreachable", "quorum-lost", "no-leader"}},
		{desc: "5 members, 2 down: tolerance 0", report: EtcdReport{Members: members("LFFDD")},
			members: 5, quorum: 3, healthy: 3, tolerate: 0, leader: "etcd1", sev: Warning,
			codes: []string{"member-unreachable", "member-unreachable", "no-tolerance"}},
		{desc: "5 members, 1 down: tolerance 1", report: EtcdReport{Members: members("LFFFD")},
			members: 5, quorum: 3, healthy: 4, tolerate: 1, leader: "etcd1", sev: Warning,
			codes: []string{"member-unreachable"}},
		{desc: "4 members: even count warned", report: EtcdReport{Members: members("LFFF")},
			members: 4, quorum: 3, healthy: 4, tolerate: 1, leader: "etcd1", sev: Warning,
			codes: []string{"even-members"}},
		{desc: "2 members, 1 down: quorum lost", report: EtcdReport{Members: members("LD")},
			members: 2, quorum: 2, healthy: 1, tolerate: 0, leader: "etcd1", sev: Critical,
			codes: []string{"member-unreachable", "quorum-lost", "even-members"}},
		{desc: "single member", report: EtcdReport{Members: members("L")},
			members: 1, quorum: 1, healthy: 1, tolerate: 0, leader: "etcd1", sev: OK},
		{desc: "learner not counted", report: EtcdReport{Members: members("LFFl")},
			members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: OK},
		{desc: "NOSPACE alarm", report: EtcdReport{Members: members("LFF"), Alarms: []EtcdAlarm{{MemberID: "b", Member: "etcd2", Alarm: "NOSPACE"}}},
			members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: Critical,
			codes: []string{"alarm-nospace"}},
		{desc: "CORRUPT alarm", report: EtcdReport{Members: members("LFF"), Alarms: []EtcdAlarm{{MemberID: "c", Alarm: "CORRUPT"}}},
			members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: Critical,
			codes: []string{"alarm-corrupt"}},
		{desc: "alarms unreadable while healthy", report: EtcdReport{Members: members("LFF"), AlarmError: "deadline"},
			members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: Warning,
			codes: []string{"alarms-unknown"}},
		{desc: "nothing answers", report: EtcdReport{ListError: "refused"},
			sev: Critical, codes: []string{"etcd-unreachable"}},
		{desc: "split leader view", report: EtcdReport{Members: func() []EtcdMember {
			m := members("LFF")
			m[2].Leader = "c"
			return m
		}()}, members: 3, quorum: 2, healthy: 3, tolerate: 1, sev: Warning, codes: []string{"leader-disagreement"}},
		{desc: "database near quota", report: EtcdReport{Members: func() []EtcdMember {
			m := members("LFF")
			m[1].DBSize, m[1].DBSizeQuota = 90, 100
			return m
		}()}, members: 3, quorum: 2, healthy: 3, tolerate: 1, leader: "etcd1", sev: Warning, codes: []string{"db-near-quota"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			v, fs := EtcdQuorum(tc.report)
			if v.Members != tc.members || v.Quorum != tc.quorum && tc.members > 0 || v.Healthy != tc.healthy || v.Tolerance != tc.tolerate {
				t.Errorf("members/quorum/healthy/tolerance = %d/%d/%d/%d, want %d/%d/%d/%d",
					v.Members, v.Quorum, v.Healthy, v.Tolerance, tc.members, tc.quorum, tc.healthy, tc.tolerate)
			}
			if v.Leader != tc.leader {
				t.Errorf("leader %q, want %q", v.Leader, tc.leader)
			}
			if v.Severity != tc.sev {
				t.Errorf("severity %v, want %v", v.Severity, tc.sev)
			}
			var codes []string
			for _, f := range fs {
				codes = append(codes, f.Code)
				if f.Check != CheckEtcd || f.Message == "" {
					t.Errorf("malformed finding %+v", f)
				}
			}
			if !slices.Equal(codes, tc.codes) {
				t.Errorf("codes %v, want %v", codes, tc.codes)
			}
		})
	}
}
