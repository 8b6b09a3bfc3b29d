package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/status/build"
	"github.com/epconsole/epconsole/probes"
)

// perfDatum is one Nagios performance datum,
// 'label'=value[UOM];[warn];[crit];[min];[max] (the Nagios plugin
// guidelines). warn and crit are Nagios ranges: "30:" alerts below 30,
// "0" alerts above 0, "1:1" alerts on anything but 1.
type perfDatum struct {
	Label, Value, UOM, Warn, Crit, Min, Max string
}

// String renders the datum, quoting a label that needs it and leaving
// off empty trailing fields.
func (p perfDatum) String() string {
	label := p.Label
	if strings.ContainsAny(label, " '=") {
		label = "'" + strings.ReplaceAll(label, "'", "''") + "'"
	}
	s := label + "=" + p.Value + p.UOM + ";" + p.Warn + ";" + p.Crit + ";" + p.Min + ";" + p.Max
	return strings.TrimRight(s, ";")
}

// perfLine is the perfdata part of the summary line: " | d1 d2 ..." ("" when
// there is none).
func perfLine(ds []perfDatum) string {
	if len(ds) == 0 {
		return ""
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return " | " + strings.Join(parts, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// seconds is d in seconds, to the microsecond.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Microsecond).Seconds(), 'f', -1, 64)
}

// checkPerf is the perfdata of the checks that ran (what), from their
// probe results: docs/check.md lists every label.
func checkPerf(what []probes.Check, in build.Inputs, res build.Results) []perfDatum {
	var ds []perfDatum
	for _, c := range what {
		switch c {
		case probes.CheckBackends:
			ready := 0
			for _, b := range res.Backends {
				if b.Last.Outcome == probes.OutcomePass {
					ready++
				}
			}
			n := itoa(len(res.Backends))
			ds = append(ds, perfDatum{Label: "backends_ready", Value: itoa(ready), Warn: n + ":", Min: "0", Max: n})
			for _, b := range res.Backends {
				if b.Last.Stage == probes.StageDone {
					ds = append(ds, perfDatum{Label: "latency_" + b.Target.Name, Value: seconds(b.Last.Latency), UOM: "s", Min: "0"})
				}
			}
		case probes.CheckTLS:
			lowest, read := 0, false
			for _, cr := range res.Certs {
				if cr.Error == "" && !cr.NotAfter.IsZero() && (!read || cr.DaysLeft < lowest) {
					lowest, read = cr.DaysLeft, true
				}
			}
			if read {
				// check warns at expiry_warn_days or fewer: the Nagios
				// range that alerts below warn+1.
				ds = append(ds, perfDatum{Label: "cert_days_min", Value: itoa(lowest),
					Warn: itoa(in.Certs.WarnDays+1) + ":", Crit: itoa(in.Certs.CritDays+1) + ":"})
			}
		case probes.CheckEtcd:
			if e := res.Etcd; e != nil && e.ListError == "" {
				v := e.Verdict
				m := itoa(v.Members)
				ds = append(ds, perfDatum{Label: "etcd_members_healthy", Value: itoa(v.Healthy), Warn: m + ":", Crit: itoa(v.Quorum) + ":", Min: "0", Max: m})
			}
		}
	}
	return ds
}

// clusterPerf is the perfdata of the daemon's cluster view (check all
// with a daemon): live peers, VIP owners, drained backends.
func clusterPerf(s status.Snapshot) []perfDatum {
	if s.Source != status.SourceDaemon {
		return nil
	}
	live, owners, drained := 0, 0, 0
	for _, p := range s.Peers {
		if p.Live() {
			live++
			if p.Owner == p.Name {
				owners++
			}
		}
	}
	for _, b := range s.Backends {
		if b.Drained {
			drained++
		}
	}
	n := itoa(len(s.Peers))
	return []perfDatum{
		{Label: "peers_live", Value: itoa(live), Warn: n + ":", Min: "0", Max: n},
		{Label: "vip_owners", Value: itoa(owners), Crit: "1:1", Min: "0", Max: n},
		{Label: "backends_drained", Value: itoa(drained), Warn: "0", Min: "0", Max: itoa(len(s.Backends))},
	}
}
