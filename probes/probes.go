// Package probes looks at a Kubernetes control plane from the outside and
// says what is wrong with it: apiserver health (TCP, TLS, HTTPS /readyz)
// with HAProxy-style rise/fall state per backend, the apiserver serving
// certificates (chain, SANs, expiry), etcd quorum, and the kubeconfig
// clients use. Every probe returns a value and changes nothing.
//
// Findings carry a Severity ordered like Nagios states and fix hints for
// the two common setups (kubeadm, microk8s); Summarize folds them into one
// verdict. The package imports nothing of epconsole's own: callers map
// their configuration onto the option structs here.
package probes

import (
	"fmt"
	"strings"
)

// Severity is a finding's or a verdict's state, with Nagios' exit codes as
// values: OK 0, Warning 1, Critical 2, Unknown 3.
type Severity int

// Severities.
const (
	OK       Severity = 0
	Warning  Severity = 1
	Critical Severity = 2
	// Unknown means the probe could not decide (e.g. nothing to read).
	Unknown Severity = 3
)

// String returns the Nagios name: OK, WARNING, CRITICAL, UNKNOWN.
func (s Severity) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	case Unknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// ExitCode is the Nagios plugin exit code for s.
func (s Severity) ExitCode() int {
	if s < OK || s > Unknown {
		return int(Unknown)
	}
	return int(s)
}

// Rank orders severities from best to worst: OK 0 < WARNING 1 < UNKNOWN 2
// < CRITICAL 3. A verdict that could not be decided must not read as a
// mere warning, and a known critical outranks everything.
func (s Severity) Rank() int {
	switch s {
	case OK:
		return 0
	case Warning:
		return 1
	case Unknown:
		return 2
	case Critical:
		return 3
	}
	return 2
}

// Worse reports whether s is worse than o (OK < WARNING < UNKNOWN < CRITICAL).
func (s Severity) Worse(o Severity) bool { return s.Rank() > o.Rank() }

// Worst returns the worst of the severities, OK for none.
func Worst(ss ...Severity) Severity {
	w := OK
	for _, s := range ss {
		if s.Worse(w) {
			w = s
		}
	}
	return w
}

// ParseSeverity reads a Nagios name (any case).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToUpper(s) {
	case "OK":
		return OK, nil
	case "WARNING", "WARN":
		return Warning, nil
	case "CRITICAL", "CRIT":
		return Critical, nil
	case "UNKNOWN":
		return Unknown, nil
	}
	return Unknown, fmt.Errorf("unknown severity %q (want ok, warning, critical or unknown)", s)
}

// MarshalText encodes the Nagios name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a Nagios name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Check names the probe family a finding comes from.
type Check string

// Checks, as `epconsole check` and the status model's areas name them.
const (
	CheckBackends   Check = "backends"
	CheckTLS        Check = "tls"
	CheckEtcd       Check = "etcd"
	CheckKubeconfig Check = "kubeconfig"
	// CheckPreflight is the LB host's own check (forwarding, firewall, ...).
	CheckPreflight Check = "preflight"
	// CheckCluster judges the LB peers' shared view (owner, quorum, peers).
	CheckCluster Check = "cluster"
)

// Setup names the kind of cluster a fix hint is for.
type Setup string

// Setups a hint can target; SetupAny applies to every cluster.
const (
	SetupAny      Setup = ""
	SetupKubeadm  Setup = "kubeadm"
	SetupMicrok8s Setup = "microk8s"
)

// Fix is one way to repair a finding.
type Fix struct {
	// Setup is the cluster kind the fix is written for ("" = any).
	Setup Setup `json:"setup,omitempty"`
	// Text says what to do, naming the exact entries, files and commands.
	Text string `json:"text"`
}

// String renders the fix as one line: "[kubeadm] text", or the text alone
// for any setup.
func (f Fix) String() string {
	if f.Setup == SetupAny {
		return f.Text
	}
	return "[" + string(f.Setup) + "] " + f.Text
}

// ParseFix reads a fix written by Fix.String.
func ParseFix(s string) Fix {
	for _, setup := range []Setup{SetupKubeadm, SetupMicrok8s} {
		if t, ok := strings.CutPrefix(s, "["+string(setup)+"] "); ok {
			return Fix{Setup: setup, Text: t}
		}
	}
	return Fix{Text: s}
}

// Finding is one thing a probe found, good or bad. It is the one finding
// type of epconsole: `check`, the host preflight and the status model
// all carry it.
type Finding struct {
	Check    Check    `json:"check"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: a backend, an etcd member, a
	// kubeconfig context ("" for the check as a whole).
	Subject string `json:"subject,omitempty"`
	// Code is a stable identifier for scripts (e.g. "san-missing-ip").
	Code string `json:"code"`
	// Message is one line for humans.
	Message string `json:"message"`
	// Detail is the raw error or evidence behind the message, if any.
	Detail string `json:"detail,omitempty"`
	// Fixes are the repair hints.
	Fixes []Fix `json:"fixes,omitempty"`
}

// Text is the message with its detail: "message (detail)".
func (f Finding) Text() string {
	if f.Detail == "" {
		return f.Message
	}
	return f.Message + " (" + f.Detail + ")"
}

// Line renders the finding as one line: severity, check/subject, message,
// detail and fixes.
func (f Finding) Line() string {
	var b strings.Builder
	b.WriteString(f.Severity.String())
	b.WriteString(" ")
	b.WriteString(string(f.Check))
	if f.Subject != "" {
		b.WriteString("/")
		b.WriteString(f.Subject)
	}
	b.WriteString(": ")
	b.WriteString(f.Text())
	for i, fx := range f.Fixes {
		if i == 0 {
			b.WriteString(" -- fix ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(fx.String())
	}
	return b.String()
}

// Verdict is the folded result of a set of findings.
type Verdict struct {
	Severity Severity `json:"severity"`
	// Counts per severity name (only non-zero ones).
	Counts map[string]int `json:"counts,omitempty"`
}

// Summarize folds findings into a verdict: the worst severity (OK <
// WARNING < UNKNOWN < CRITICAL), or OK when there are none.
func Summarize(fs []Finding) Verdict {
	v := Verdict{Severity: OK}
	for _, f := range fs {
		v.Severity = Worst(v.Severity, f.Severity)
		if v.Counts == nil {
			v.Counts = map[string]int{}
		}
		v.Counts[f.Severity.String()]++
	}
	return v
}

// Problems returns the findings that are not OK, worst first, keeping the
// original order among equals.
func Problems(fs []Finding) []Finding {
	var out []Finding
	for _, sev := range []Severity{Critical, Unknown, Warning} {
		for _, f := range fs {
			if f.Severity == sev {
				out = append(out, f)
			}
		}
	}
	return out
}
