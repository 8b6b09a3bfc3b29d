package probes

import (
	"encoding/json"
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
