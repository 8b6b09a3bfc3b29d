package preflight

import (
	"fmt"

	"github.com/epconsole/epconsole/probes"
)

// conntrackTarget is the conntrack table size recommended for o: twice the
// expected flows plus two minutes of churn in TIME_WAIT (a failover makes
// every client reconnect at once), rounded up to a power of two.
func conntrackTarget(o Options) int {
	n := 1
	for n < 2*o.neededEntries() {
		n <<= 1
	}
	return n
}

// maxChain is the longest average hash chain of a full conntrack table
// that CheckConntrack accepts.
const maxChain = 8

// CheckConntrack checks nf_conntrack_max against the expected flows (and
// churn), the hash buckets against the table size, and the current fill
// of the table. Every flow through the VIP holds one
// entry; a full table drops new connections ("nf_conntrack: table full,
// dropping packet").
func CheckConntrack(f Facts, o Options) []probes.Finding {
	maxv, okMax := f.sysctl(keyConntrackMax)
	if !okMax {
		if f.unreadable("sysctl") {
			return nil
		}
		return []probes.Finding{{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeConntrackNotLoaded,
			Message: fmt.Sprintf("nf_conntrack is not loaded yet (epconsole's NAT rules load it); once loaded, net.netfilter.nf_conntrack_max should be at least %d for %d expected flows",
				conntrackTarget(o), o.expectedFlows()),
			Fixes: fixes(fmt.Sprintf("after the daemon has started, run `epconsole check` again; to preset: echo 'net.netfilter.nf_conntrack_max = %d' >> %s", conntrackTarget(o), sysctlFile))}}
	}
	var out []probes.Finding
	want, expected := conntrackTarget(o), o.neededEntries()
	fix := persist(keyConntrackMax, fmt.Sprint(want)) + " (in the host's initial namespace: other namespaces can only read it)"
	switch {
	case maxv < expected:
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeConntrackMaxLow, Subject: SysctlName(keyConntrackMax),
			Message: fmt.Sprintf("nf_conntrack_max is %d, below the %d flows expected: new connections are dropped once the table is full", maxv, expected),
			Fixes:   fixes(fix)})
	case maxv < 2*expected:
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackMaxLow, Subject: SysctlName(keyConntrackMax),
			Message: fmt.Sprintf("nf_conntrack_max is %d, less than twice the %d flows expected: closed flows linger in TIME_WAIT and a failover makes every client reconnect at once", maxv, expected),
			Fixes:   fixes(fix)})
	}
	if count, ok := f.sysctl(keyConntrackCount); ok && maxv > 0 {
		pct := 100 * count / maxv
		switch {
		case pct >= 90:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Critical, Code: CodeConntrackFull, Subject: SysctlName(keyConntrackCount),
				Message: fmt.Sprintf("the conntrack table holds %d of %d entries (%d%%): new connections are about to be dropped", count, maxv, pct),
				Fixes:   fixes(fmt.Sprintf("%s; find the flows with `conntrack -L | awk '{print $4}' | sort | uniq -c | sort -n`", persist(keyConntrackMax, fmt.Sprint(max(want, 2*maxv)))))})
		case pct >= 75:
			out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackFull, Subject: SysctlName(keyConntrackCount),
				Message: fmt.Sprintf("the conntrack table holds %d of %d entries (%d%%)", count, maxv, pct),
				Fixes:   fixes(persist(keyConntrackMax, fmt.Sprint(max(want, 2*maxv))))})
		}
	}
	if b, ok := f.sysctl(keyConntrackBkts); ok && b > 0 && max(maxv, want)/b > maxChain {
		// The hash chains of a full table: every packet's lookup walks one.
		buckets := max(maxv, want) / 4
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.Warning, Code: CodeConntrackBuckets, Subject: SysctlName(keyConntrackBkts),
			Message: fmt.Sprintf("nf_conntrack_buckets is %d for a table of %d entries: %d entries per hash chain when full, and every packet walks one (the connection sync's creates too)", b, max(maxv, want), max(maxv, want)/b),
			Fixes:   fixes(fmt.Sprintf("%s (in the host's initial namespace; or the module option: options nf_conntrack hashsize=%d)", persist(keyConntrackBkts, fmt.Sprint(buckets)), buckets))})
	}
	if len(out) == 0 {
		count, _ := f.sysctl(keyConntrackCount)
		out = append(out, probes.Finding{Check: probes.CheckPreflight, Severity: probes.OK, Code: CodeConntrack,
			Message: fmt.Sprintf("nf_conntrack_max %d holds twice the %d expected flows; %d entries in use", maxv, expected, count)})
	}
	return out
}
