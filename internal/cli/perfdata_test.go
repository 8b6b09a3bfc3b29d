package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// TestPerfDatum: the Nagios form label=value[UOM];warn;crit;min;max, empty
// trailing fields left off, labels quoted when they must be.
func TestPerfDatum(t *testing.T) {
	tests := []struct {
		d    perfDatum
		want string
	}{
		{perfDatum{Label: "backends_ready", Value: "3", Warn: "3:", Min: "0", Max: "3"}, "backends_ready=3;3:;;0;3"},
		{perfDatum{Label: "cert_days_min", Value: "364", Warn: "30:", Crit: "7:"}, "cert_days_min=364;30:;7:"},
		{perfDatum{Label: "latency_cp1", Value: "0.0012", UOM: "s", Min: "0"}, "latency_cp1=0.0012s;;;0"},
		{perfDatum{Label: "x", Value: "1"}, "x=1"},
		{perfDatum{Label: "latency_my cp", Value: "1", UOM: "s"}, "'latency_my cp'=1s"},
		{perfDatum{Label: "it's", Value: "1"}, "'it''s'=1"},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.d, got, tc.want)
		}
	}
	if perfLine(nil) != "" {
		t.Errorf("perfLine(nil) = %q", perfLine(nil))
	}
	if seconds(1234567*time.Nanosecond) != "0.001235" {
		t.Errorf("seconds = %s", seconds(1234567*time.Nanosecond))
	}
}

// TestCheckPerf: perfdata only for the checks that ran; the certificate
// thresholds are the config's; an unreadable certificate or an etcd
// without a member list gives no datum.
func TestCheckPerf(t *testing.T) {
	in := build.Inputs{Certs: probes.CertOptions{WarnDays: 45, CritDays: 10}}
	pass := probes.HealthResult{Outcome: probes.OutcomePass, Stage: probes.StageDone, Latency: 2 * time.Millisecond}
	res := build.Results{
		Backends: []probes.BackendStatus{
			{Target: probes.Target{Name: "cp1"}, Last: pass},
			{Target: probes.Target{Name: "cp2"}, Last: probes.HealthResult{Outcome: probes.OutcomeFail}},
		},
		Certs: []probes.CertReport{{Backend: "cp1", DaysLeft: 90, NotAfter: time.Now()}, {Backend: "cp2", Error: "refused"}},
		Etcd:  &probes.EtcdReport{Verdict: probes.EtcdVerdict{Members: 5, Quorum: 3, Healthy: 4}},
	}
	line := func(what ...probes.Check) string { return perfLine(checkPerf(what, in, res)) }
	if got, want := line(probes.CheckBackends, probes.CheckTLS, probes.CheckEtcd, probes.CheckKubeconfig),
		" | backends_ready=1;2:;;0;2 latency_cp1=0.002s;;;0 cert_days_min=90;46:;11: etcd_members_healthy=4;5:;3:;0;5"; got != want {
		t.Errorf("all checks:\n%s\nwant\n%s", got, want)
	}
	if got := line(probes.CheckEtcd); got != " | etcd_members_healthy=4;5:;3:;0;5" {
		t.Errorf("etcd only: %q", got)
	}
	if got := line(probes.CheckKubeconfig, probes.CheckPreflight); got != "" {
		t.Errorf("checks without numbers: %q", got)
	}
	res.Certs = res.Certs[1:]
	res.Etcd.ListError = "no endpoint answered"
	if got := line(probes.CheckTLS, probes.CheckEtcd); got != "" {
		t.Errorf("nothing measured: %q", got)
	}
}

// TestClusterPerf: live peers, VIP owners and drained backends of a
// daemon's snapshot; none for a direct one.
func TestClusterPerf(t *testing.T) {
	s := loadStatusFixture(t, "healthy")
	s.Backends[0].Drained = true
	got := perfLine(clusterPerf(s))
	want := " | peers_live=3;3:;;0;3 vip_owners=1;;1:1;0;3 backends_drained=1;0;;0;3"
	if got != want {
		t.Errorf("%s\nwant\n%s", got, want)
	}
	s.Source = status.SourceDirect
	if clusterPerf(s) != nil {
		t.Error("a direct snapshot has cluster perfdata")
	}
}

// TestCheckGoldensPerfdata: every text golden under testdata/check whose
// checks measured something ends its first line with perfdata in the
// Nagios form.
func TestCheckGoldensPerfdata(t *testing.T) {
	datum := `('[^']+'|[^ '=]+)=-?[0-9.A-Z]+[a-zA-Z%]*(;[0-9:~@.-]*){0,4}`
	re := regexp.MustCompile(`^EPCONSOLE [A-Z]+ - .* \| ` + datum + `( ` + datum + `)*$`)
	files, _ := filepath.Glob(filepath.Join(checkGoldenDir, "*.txt"))
	with := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if !strings.Contains(first, " | ") {
			continue
		}
		with++
		if !re.MatchString(first) {
			t.Errorf("%s: perfdata not in the Nagios form:\n%s", filepath.Base(f), first)
		}
	}
	if with < 20 {
		t.Errorf("only %d of %d goldens carry perfdata", with, len(files))
	}
}
