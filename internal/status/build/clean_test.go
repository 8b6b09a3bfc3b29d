package build_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// TestBuildStripsControls: text that probed servers and peers choose
// (readyz check names and failure reasons, a peer's view of a backend,
// event details naming peers) reaches the snapshot without control
// characters or terminal escapes; the rest of the text is kept.
func TestBuildStripsControls(t *testing.T) {
	const evil = "\x1b]0;owned\x07\x1b[2J\x1b[31m"
	cp1 := backend("cp1", probes.StateDown, probes.OutcomeFail)
	cp1.Last.StatusCode = 500
	cp1.Last.FailingChecks = []string{"etcd" + evil + "\r\n[+]ok", "log\u009b2Jx"}
	cp2 := backend("cp2", probes.StateUp, probes.OutcomePass)
	peerView := cluster.BackendView{Name: "cp2", State: "down", Reason: "refused\x1b[1A\x1b[2Kall good"}
	d := &build.Daemon{ViewOK: true, Decision: cluster.Decision{Owner: "lb1", Epoch: 1, Elected: "lb1", Reason: "owner"},
		View: cluster.View{Self: "lb1", Members: []cluster.Member{
			member("lb1", cluster.StateAlive, true, "lb1"), member("lb2", cluster.StateAlive, true, "lb1", peerView)}},
		Events: []status.Event{{Time: time.Unix(1, 0), Kind: "peer-rejected", Subject: "intru\x1b[8mder",
			Message: "127.0.0.9:7946 gossip member refused: \"intru\x1b[8mder\"\x00 is not a configured peer"}},
	}
	s := build.Build(testConfig(), testInputs(), build.Results{Backends: []cp1Status{cp1, cp2}}, build.Meta{Time: time.Unix(2, 0)}, d)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	_ = json.Unmarshal(b, &raw)
	walk(raw, func(v string) {
		for _, r := range v {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Errorf("control character %U in %q", r, v)
				return
			}
		}
	})
	if got := s.Backends[0].Views[0].Reason; !strings.Contains(got, "failing: etcd  [+]ok, logx") {
		t.Errorf("cp1's reason %q", got)
	}
	if got := s.Events[0]; got.Subject != "intruder" || !strings.Contains(got.Message, `"intruder" is not a configured peer`) {
		t.Errorf("event %+v", got)
	}
	found := false
	for _, bk := range s.Backends {
		for _, v := range bk.Views {
			if v.Peer == "lb2" {
				found = true
				if v.Reason != "refusedall good" {
					t.Errorf("lb2's view reason %q", v.Reason)
				}
			}
		}
	}
	if !found {
		t.Error("lb2's view of cp2 not in the snapshot")
	}
}

type cp1Status = probes.BackendStatus

// walk calls fn for every string in a decoded JSON value.
func walk(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case []any:
		for _, e := range x {
			walk(e, fn)
		}
	case map[string]any:
		for k, e := range x {
			fn(k)
			walk(e, fn)
		}
	}
}
