package cli

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/preflight"
	"github.com/epconsole/epconsole/probes"
)

// TestCheckPreflight runs `check preflight` against an LB host in a network
// namespace: fine as netlab builds it (forwarding on), CRITICAL with the
// fix once IPv4 forwarding is switched off there.
func TestCheckPreflight(t *testing.T) {
	lab := netlab.New(t, netlab.Spec{
		Prefix: "ci1",
		IPv4:   netip.MustParsePrefix("198.18.6.0/24"),
		IPv6:   netip.MustParsePrefix("fd00:198:18:6::/64"),
		Hosts:  []netlab.HostSpec{{Name: "lb1", Role: netlab.RoleLB}},
	})
	cfg, diags := config.Load("../../testdata/config/good/minimal.hcl", config.WithoutSecrets())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lb := lab.Host("lb1")
	o := checkOptions{what: []probes.Check{checkPreflight}, explicit: true, netnsPath: lb.NsPath(), now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	codes := func(r checkReport) []string {
		var cs []string
		for _, f := range r.Findings {
			cs = append(cs, f.Severity.String()+" "+f.Code)
		}
		return cs
	}
	r := gather(ctx, cfg, o)
	if r.Checks.Preflight == nil || r.Checks.Preflight.Checked == 0 {
		t.Fatalf("no preflight section or no checks ran: %+v", r.Checks.Preflight)
	}
	for _, f := range r.Findings {
		if f.Code == preflight.CodeIPForwardOff || f.Severity == probes.Critical {
			t.Errorf("forwarding host: unexpected finding %s %s: %s", f.Severity, f.Code, f.Message)
		}
	}
	t.Logf("as built: exit %d, %s; findings %v", r.ExitCode, r.Summary, codes(r))

	// --new-flows-per-second counts churn: a million new flows a second
	// hold 120 million entries in TIME_WAIT, more than any table.
	churn := o
	churn.newFlowsPerSecond = 1_000_000
	r = gather(ctx, cfg, churn)
	low := false
	for _, f := range r.Findings {
		low = low || (f.Code == preflight.CodeConntrackMaxLow && f.Severity == probes.Critical && strings.Contains(f.Message, "120050000"))
	}
	if !low {
		t.Errorf("with --new-flows-per-second 1000000: no CRITICAL %s finding for 120,050,000 entries: %v", preflight.CodeConntrackMaxLow, codes(r))
	}

	if err := lb.WriteSysctl("net/ipv4/ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	r = gather(ctx, cfg, o)
	var out bytes.Buffer
	r.write(&out, false)
	t.Logf("forwarding off:\n%s", out.String())
	if r.ExitCode != 2 {
		t.Errorf("exit %d with forwarding off, want 2 (CRITICAL)", r.ExitCode)
	}
	found := false
	for _, f := range r.Findings {
		if f.Code == preflight.CodeIPForwardOff && f.Severity == probes.Critical && len(f.Fixes) > 0 &&
			strings.Contains(f.Fixes[0].Text, "ip_forward") {
			found = true
		}
	}
	if !found {
		t.Errorf("no CRITICAL %s finding with a fix naming ip_forward: %v", preflight.CodeIPForwardOff, codes(r))
	}
	if !strings.Contains(out.String(), "preflight") {
		t.Errorf("text output does not name the preflight check")
	}
}
