package daemon

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestReload: a good config is applied to every component; a bad one, or
// one that needs a restart, changes nothing at all.
func TestReload(t *testing.T) {
	// The config edits a reload is tried with.
	addBackend := func(src string) string {
		return src + "backend \"cp3\" {\n  address = \"198.18.5.23\"\n}\n"
	}
	newMisses := func(src string) string {
		return strings.Replace(src, "gossip {\n", "gossip {\n  heartbeat_misses = 8\n", 1)
	}
	tests := []struct {
		name string
		edit func(src string) string
		hold bool
		// wantCalls: the component calls, in order; nil for none at all.
		wantCalls   []string
		wantRejects string // the LastReloadError, "" when accepted
		wantTargets []string
	}{
		{
			name: "a backend added",
			edit: addBackend,
			wantCalls: []string{
				"sync.SetScope [198.18.5.100:6443]", "lease.Install [198.18.5.100]",
				"cluster.SetPeers [lb2=198.18.5.12:7946 lb3=198.18.5.13:8000]", "cluster.SetKeys 1",
				"dp.Reconcile healthy=[cp1 cp2] drain=[]",
			},
			wantTargets: []string{"cp1", "cp2", "cp3"},
		},
		{
			name: "holding: the lease is renewed",
			edit: addBackend, hold: true,
			wantCalls: []string{
				"sync.SetScope [198.18.5.100:6443]", "lease.Install [198.18.5.100]", "lease.Renew",
				"cluster.SetPeers [lb2=198.18.5.12:7946 lb3=198.18.5.13:8000]", "cluster.SetKeys 1",
				"dp.Reconcile healthy=[cp1 cp2] drain=[]",
			},
			wantTargets: []string{"cp1", "cp2", "cp3"},
		},
		{
			name: "a heartbeat setting changed: the beat loop restarts",
			edit: newMisses,
			wantCalls: []string{
				"sync.SetScope [198.18.5.100:6443]", "lease.Install [198.18.5.100]",
				"cluster.SetPeers [lb2=198.18.5.12:7946 lb3=198.18.5.13:8000]", "cluster.SetKeys 1",
				"beat.Refresh owner= epoch=0 flags=restarting", "beat.Close 198.18.5.11:7947", "beat.Start 198.18.5.11:7947", "beat.Refresh owner= epoch=0 flags=none",
				"dp.Reconcile healthy=[cp1 cp2] drain=[]",
			},
			wantTargets: []string{"cp1", "cp2"},
		},
		{
			name:        "invalid config",
			edit:        func(src string) string { return src + "backend {\n" },
			wantRejects: "config.hcl:",
		},
		{
			name: "a semantic error",
			edit: func(src string) string {
				return strings.Replace(src, `address = "198.18.5.22"`, `address = "not-an-ip"`, 1)
			},
			wantRejects: "config.hcl:",
		},
		{
			name:        "a change that needs a restart",
			edit:        func(src string) string { return strings.Replace(src, `name        = "lb1"`, `name        = "lb9"`, 1) },
			wantRejects: "node.name changed (needs a restart)",
		},
		{
			name:        "a new status socket needs a restart",
			edit:        func(src string) string { return src + "status {\n  socket = \"/run/epconsole/other.sock\"\n}\n" },
			wantRejects: "status.socket changed",
		},
		{
			name:        "a new metrics listener needs a restart",
			edit:        func(src string) string { return src + "status {\n  metrics_listen = \"127.0.0.1:9990\"\n}\n" },
			wantRejects: "status.metrics_listen changed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, Options{})
			r.eligible()
			if tc.hold {
				r.hold(2)
			}
			old, oldMon, oldBeat := r.s.cfg, r.mon(), r.s.beater
			if err := os.WriteFile(r.d.opts.ConfigPath, []byte(tc.edit(testConfigSource)), 0o600); err != nil {
				t.Fatal(err)
			}
			r.d.reload(r.s)
			st := r.d.Status()
			if got := r.log.get(); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if st.LastReload.IsZero() {
				t.Error("the reload is not in the status")
			}
			if tc.wantRejects != "" {
				if r.s.cfg != old || r.mon() != oldMon || r.s.beater != oldBeat || len(r.monitors) != 1 || len(r.beats) != 1 {
					t.Error("a rejected reload changed the config, the probes or the beat loop")
				}
				if !strings.Contains(st.LastReloadError, tc.wantRejects) {
					t.Errorf("reload error %q, want it to say %q", st.LastReloadError, tc.wantRejects)
				}
				if ev := r.events(EventReloadRejected); len(ev) != 1 || len(r.events(EventReloadOK)) != 0 {
					t.Errorf("events: rejected %q, ok %q; want one rejection", ev, r.events(EventReloadOK))
				}
				return
			}
			if st.LastReloadError != "" || len(r.events(EventReloadOK)) != 1 {
				t.Errorf("reload error %q, ok events %q: want accepted", st.LastReloadError, r.events(EventReloadOK))
			}
			if r.s.cfg == old || r.d.config() != r.s.cfg {
				t.Error("the new config is not the running one")
			}
			select {
			case <-oldMon.stopped:
			default:
				t.Error("the old probe monitor still runs")
			}
			var targets []string
			for _, tg := range r.mon().opts.Targets {
				targets = append(targets, tg.Name)
			}
			if len(r.monitors) != 2 || !slices.Equal(targets, tc.wantTargets) {
				t.Errorf("%d monitors, the last with targets %v; want a new one with %v", len(r.monitors), targets, tc.wantTargets)
			}
			// A new backend is down until probed; the others keep what
			// is programmed.
			if h := r.s.programmed; len(tc.wantTargets) == 3 && (h["cp3"] || !h["cp1"] || !h["cp2"]) {
				t.Errorf("programmed %v, want cp1 and cp2 kept, cp3 down", h)
			}
		})
	}
}
