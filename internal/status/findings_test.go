package status

import (
	"encoding/json"
	"testing"

	"github.com/epconsole/epconsole/probes"
)

// TestFindingsJSON: findings are written in the status schema's form —
// the check as "area", the detail inside the message, fixes as lines with
// their setup — and read back into the same bytes.
func TestFindingsJSON(t *testing.T) {
	fs := Findings{
		{Check: probes.CheckTLS, Severity: probes.Critical, Subject: "cp1", Code: "san-missing-ip", Message: "no VIP SAN", Detail: "has 10.0.0.1",
			Fixes: []probes.Fix{{Setup: probes.SetupKubeadm, Text: "kubeadm init phase certs apiserver"}, {Text: "reissue"}}},
		{Check: probes.CheckCluster, Severity: probes.Warning, Code: "peer-down", Message: "lb3 down"},
	}
	want := `[{"area":"tls","severity":"CRITICAL","subject":"cp1","code":"san-missing-ip","message":"no VIP SAN (has 10.0.0.1)","fixes":["[kubeadm] kubeadm init phase certs apiserver","reissue"]},` +
		`{"area":"cluster","severity":"WARNING","code":"peer-down","message":"lb3 down"}]`
	b, err := json.Marshal(fs)
	if err != nil || string(b) != want {
		t.Fatalf("marshal = %s, %v\nwant %s", b, err, want)
	}
	var back Findings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back[0].Check != probes.CheckTLS || back[0].Fixes[0].Setup != probes.SetupKubeadm || back[1].Severity != probes.Warning {
		t.Errorf("read back %+v", back)
	}
	again, _ := json.Marshal(back)
	if string(again) != want {
		t.Errorf("not the same bytes again:\n%s\nwant %s", again, want)
	}
	var none Findings
	if b, _ := json.Marshal(struct {
		F Findings `json:"f"`
	}{none}); string(b) != `{"f":null}` {
		t.Errorf("nil findings = %s", b)
	}
}

// TestSplitView: live peers disagreeing about a backend is a split view;
// a dead peer's or an unknown view takes no side.
func TestSplitView(t *testing.T) {
	s := Snapshot{
		Peers: []Peer{{Name: "lb1", Self: true}, {Name: "lb2", State: "alive", Fresh: true}, {Name: "lb3", State: "dead"}},
		Backends: []Backend{
			{Name: "cp1", Views: []BackendView{{Peer: "lb1", State: "up"}, {Peer: "lb2", State: "down"}}},
			{Name: "cp2", Views: []BackendView{{Peer: "lb1", State: "up"}, {Peer: "lb3", State: "down"}}},
			{Name: "cp3", Views: []BackendView{{Peer: "lb1", State: "falling"}, {Peer: "lb2", State: "unknown"}}},
		},
	}
	if sv, ok := s.SplitView("cp1"); !ok || len(sv.In) != 1 || sv.In[0] != "lb1" || len(sv.Out) != 1 || sv.Out[0].Peer != "lb2" {
		t.Errorf("cp1: %+v %v, want lb1 in, lb2 out", sv, ok)
	}
	for _, b := range []string{"cp2", "cp3", "nosuch"} {
		if sv, ok := s.SplitView(b); ok {
			t.Errorf("%s: split %+v", b, sv)
		}
	}
}
