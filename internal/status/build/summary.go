package build

import (
	"fmt"
	"strings"

	"github.com/epconsole/epconsole/probes"
)

// BackendsSummary words the backends check: "2/3 ready, down: cp2"
// ("pass tcp" / "pass tls" for the other probe kinds).
func BackendsSummary(kind probes.Kind, rs []probes.HealthResult) string {
	var ready int
	var unknown, down []string
	for _, b := range rs {
		switch b.Outcome {
		case probes.OutcomePass:
			ready++
		case probes.OutcomeReadinessUnknown:
			unknown = append(unknown, b.Backend)
		default:
			down = append(down, b.Backend)
		}
	}
	s := fmt.Sprintf("%d/%d ready", ready, len(rs))
	if kind != probes.KindHTTPS {
		s = fmt.Sprintf("%d/%d pass %s", ready, len(rs), kind)
	}
	if len(unknown) > 0 {
		s += ", readiness unknown: " + strings.Join(unknown, ",")
	}
	if len(down) > 0 {
		s += ", down: " + strings.Join(down, ",")
	}
	return s
}

// TLSSummary words the certificate check from its reports and findings:
// "3/3 certificates fine, first expiry in 287 days".
func TLSSummary(reports []probes.CertReport, fs []probes.Finding, caFileSet bool) string {
	bad := map[string]bool{}
	for _, f := range fs {
		if f.Subject != "" && f.Severity != probes.OK {
			bad[f.Subject] = true
		}
	}
	first := -1
	for _, c := range reports {
		if c.Error == "" && (first < 0 || c.DaysLeft < first) {
			first = c.DaysLeft
		}
	}
	s := fmt.Sprintf("%d/%d certificates fine", len(reports)-len(bad), len(reports))
	if first >= 0 {
		s += fmt.Sprintf(", first expiry in %d days", first)
	}
	if !caFileSet {
		s += " (chain not checked: tls.ca_file unset)"
	}
	return s
}

// EtcdSummary words the etcd check: "3/3 healthy, quorum 2, can lose 1,
// leader etcd-cp1".
func EtcdSummary(rep probes.EtcdReport) string {
	v := rep.Verdict
	var s string
	switch {
	case rep.ListError != "":
		s = "unreachable"
	case v.Healthy < v.Quorum:
		s = fmt.Sprintf("%d/%d healthy, quorum %d lost", v.Healthy, v.Members, v.Quorum)
	default:
		s = fmt.Sprintf("%d/%d healthy, quorum %d, can lose %d", v.Healthy, v.Members, v.Quorum, v.Tolerance)
	}
	if rep.ListError == "" {
		if v.Leader != "" {
			s += ", leader " + v.Leader
		} else {
			s += ", no leader"
		}
	}
	for _, a := range rep.Alarms {
		s += fmt.Sprintf(", alarm %s on %s", a.Alarm, a.Member)
	}
	return s
}

// KubeconfigSummary words the kubeconfig check: "admin@c -> https://198.18.6.100:6443
// (vip), trusts the cluster CA". caKnown says the cluster CA could be read.
func KubeconfigSummary(rep probes.KubeconfigReport, caKnown bool) string {
	switch {
	case rep.Error != "" || !rep.Found:
		return "unreadable"
	case rep.Server == "":
		return "no usable context"
	}
	s := fmt.Sprintf("%s -> %s (%s)", rep.Context, rep.Server, rep.PointsAt)
	if rep.Backend != "" {
		s = fmt.Sprintf("%s -> %s (%s %s)", rep.Context, rep.Server, rep.PointsAt, rep.Backend)
	}
	switch {
	case rep.CAMatches:
		s += ", trusts the cluster CA"
	case caKnown:
		s += ", does not trust the cluster CA"
	}
	return s
}

// PreflightSummary words the host check: "12 host checks fine" or "2 of
// 12 host checks need attention".
func PreflightSummary(fs []probes.Finding) string {
	problems := 0
	for _, f := range fs {
		if f.Severity != probes.OK {
			problems++
		}
	}
	if problems == 0 {
		return fmt.Sprintf("%d host checks fine", len(fs))
	}
	return fmt.Sprintf("%d of %d host checks need attention", problems, len(fs))
}
