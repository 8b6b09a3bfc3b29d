package probes

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	f := func(s Severity) Finding { return Finding{Check: CheckBackends, Severity: s, Code: "x", Message: "m"} }
	tests := []struct {
		desc string
		in   []Finding
		want Severity
	}{
		{desc: "nothing found is OK", in: nil, want: OK},
		{desc: "only OK", in: []Finding{f(OK), f(OK)}, want: OK},
		{desc: "a warning", in: []Finding{f(OK), f(Warning)}, want: Warning},
		{desc: "critical beats warning", in: []Finding{f(Warning), f(Critical), f(Warning)}, want: Critical},
		{desc: "unknown beats warning", in: []Finding{f(Warning), f(Unknown)}, want: Unknown},
		{desc: "critical beats unknown", in: []Finding{f(Unknown), f(Critical)}, want: Critical},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			v := Summarize(tc.in)
			if v.Severity != tc.want {
				t.Errorf("got %v, want %v", v.Severity, tc.want)
			}
			n := 0
			for _, c := range v.Counts {
				n += c
			}
			if n != len(tc.in) {
				t.Errorf("counts %v add up to %d, want %d", v.Counts, n, len(tc.in))
			}
		})
	}
}

func TestProblemsOrder(t *testing.T) {
	in := []Finding{
		{Severity: OK, Code: "ok"}, {Severity: Warning, Code: "w1"}, {Severity: Critical, Code: "c1"},
		{Severity: Unknown, Code: "u1"}, {Severity: Warning, Code: "w2"}, {Severity: Critical, Code: "c2"},
	}
	var got []string
	for _, f := range Problems(in) {
		got = append(got, f.Code)
	}
	if want := "c1,c2,u1,w1,w2"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{OK, Warning, Critical, Unknown} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%v: round trip gave %v, %v", s, back, err)
		}
		if s.ExitCode() != int(s) {
			t.Errorf("%v exit code %d", s, s.ExitCode())
		}
	}
	if _, err := ParseSeverity("fine"); err == nil {
		t.Error("ParseSeverity accepted nonsense")
	}
}

func TestFindingLine(t *testing.T) {
	f := Finding{Check: CheckTLS, Severity: Critical, Subject: "cp1", Code: "san-missing-ip",
		Message: "certificate SANs lack IP 198.18.3.100", Detail: "d",
		Fixes: []Fix{{Setup: SetupKubeadm, Text: "a"}, {Setup: SetupMicrok8s, Text: "b"}}}
	want := "CRITICAL tls/cp1: certificate SANs lack IP 198.18.3.100 (d) -- fix [kubeadm] a; [microk8s] b"
	if got := f.Line(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestJudgeBackends(t *testing.T) {
	pass := HealthResult{Backend: "cp1", Outcome: OutcomePass, StatusCode: 200}
	refused := HealthResult{Backend: "cp2", Outcome: OutcomeFail, Stage: StageConnect, Error: "dial tcp: connect: connection refused"}
	unreachable := HealthResult{Backend: "cp2", Address: netip.MustParseAddrPort("198.18.3.12:6443"), Outcome: OutcomeFail, Stage: StageConnect, Error: "dial tcp: i/o timeout"}
	badTLS := HealthResult{Backend: "cp2", Outcome: OutcomeFail, Stage: StageTLS, Error: "x509"}
	unready := HealthResult{Backend: "cp2", Outcome: OutcomeFail, Stage: StageDone, StatusCode: 500, FailingChecks: []string{"etcd", "informer-sync"}}
	slow := HealthResult{Backend: "cp2", Outcome: OutcomeFail, Stage: StageHTTP, Error: "context deadline exceeded"}
	reset := HealthResult{Backend: "cp2", Outcome: OutcomeFail, Stage: StageHTTP, Error: "EOF"}
	anon := HealthResult{Backend: "cp3", Outcome: OutcomeReadinessUnknown, StatusCode: 403}
	certRejected := HealthResult{Backend: "cp3", Outcome: OutcomeReadinessUnknown, StatusCode: 401, ClientCert: true}
	rbac := HealthResult{Backend: "cp3", Outcome: OutcomeReadinessUnknown, StatusCode: 403, ClientCert: true}
	tests := []struct {
		desc   string
		in     []HealthResult
		codes  string
		sev    Severity
		fixHas string
	}{
		{desc: "all pass", in: []HealthResult{pass}, codes: "", sev: OK},
		{desc: "nothing configured", in: nil, codes: "", sev: OK},
		{desc: "one refused of two", in: []HealthResult{pass, refused}, codes: "backend-refused", sev: Warning, fixHas: "crictl ps -a --name kube-apiserver"},
		{desc: "unreachable", in: []HealthResult{pass, unreachable}, codes: "backend-unreachable", sev: Warning, fixHas: "reachable from this node on port 6443"},
		{desc: "TLS", in: []HealthResult{pass, badTLS}, codes: "backend-tls", sev: Warning, fixHas: "epconsole check tls"},
		{desc: "unready names the checks", in: []HealthResult{pass, unready}, codes: "backend-unready", sev: Warning, fixHas: "readyz?verbose"},
		{desc: "timeout", in: []HealthResult{pass, slow}, codes: "backend-timeout", sev: Warning, fixHas: "raise health.timeout"},
		{desc: "other error", in: []HealthResult{pass, reset}, codes: "backend-error", sev: Warning},
		{desc: "403 anonymous is not down", in: []HealthResult{anon}, codes: "readiness-unknown", sev: Warning, fixHas: "health.client_cert_file"},
		{desc: "401 with client cert", in: []HealthResult{certRejected}, codes: "readiness-unknown", sev: Warning, fixHas: "--client-ca-file"},
		{desc: "403 with client cert", in: []HealthResult{rbac}, codes: "readiness-unknown", sev: Warning, fixHas: "clusterrolebinding"},
		{desc: "all down is critical", in: []HealthResult{refused, unready}, codes: "backend-refused,backend-unready,no-backend", sev: Critical},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			fs := JudgeBackends(tc.in)
			var got []string
			for _, f := range fs {
				got = append(got, f.Code)
			}
			if strings.Join(got, ",") != tc.codes {
				t.Errorf("codes %v, want %s", got, tc.codes)
			}
			if s := Summarize(fs).Severity; s != tc.sev {
				t.Errorf("severity %v, want %v", s, tc.sev)
			}
			if tc.fixHas != "" && !strings.Contains(fs[0].Line(), tc.fixHas) {
				t.Errorf("%q lacks %q", fs[0].Line(), tc.fixHas)
			}
		})
	}
	if fs := JudgeBackends([]HealthResult{pass, unready}); !strings.Contains(fs[0].Message, "failing: etcd, informer-sync") {
		t.Errorf("unready message %q does not name the failing checks", fs[0].Message)
	}
}
