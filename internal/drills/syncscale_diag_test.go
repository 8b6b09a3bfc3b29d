package drills

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// diagCounters logs the counters that tell why a connection through the
// VIP was not answered: each host's TCP listen and SYN drops (nstat), its
// conntrack table's statistics, its listeners' queues, and the client's
// sockets by state.
func diagCounters(t *testing.T, hosts []*netlab.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, h := range hosts {
		for _, argv := range [][]string{
			{"nstat", "-az", "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtSyncookiesSent", "TcpExtTCPTimeWaitOverflow", "TcpActiveOpens", "TcpPassiveOpens", "TcpAttemptFails", "TcpExtTCPBacklogDrop", "TcpInErrs", "IpInDiscards", "IpOutNoRoutes"},
			{"conntrack", "-S"},
			{"conntrack", "-C"},
			{"ss", "-ltn"},
			{"ss", "-s"},
		} {
			out, err := h.Command(ctx, argv...).CombinedOutput()
			t.Logf("%s: %s: %v\n%s", h.Name(), strings.Join(argv, " "), err, out)
		}
	}
}

// diagSyncTables logs why a peer holds fewer flows than the owner: each
// LB's sync counters, its conntrack entries to the VIP by TCP state, and
// a few flows the owner has that a peer lacks, with their state there.
func diagSyncTables(t *testing.T, c *cluster, owner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tables := map[string]map[string]string{} // LB -> client port -> state
	for _, h := range c.lbs {
		cl := status.NewClient(c.socket(h.Name()))
		if s, err := cl.Status(ctx); err == nil && s.Counters != nil {
			k := s.Counters
			t.Logf("%s: sync applied %d, resyncs sent %d, gap repairs %d, dropped %v, streams %+v", h.Name(), k.SyncApplied, k.SyncResyncs, k.SyncGapRepairs, k.SyncDropped, k.SyncPeers)
		}
		cl.Close()
		out, err := h.Command(ctx, "conntrack", "-L", "-p", "tcp", "-d", c.vip.String(), "--dport", "6443").Output()
		if err != nil {
			t.Logf("%s: conntrack -L: %v", h.Name(), err)
			continue
		}
		flows, states := map[string]string{}, map[string]int{}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 8 {
				continue
			}
			var sport string
			for _, x := range f {
				if strings.HasPrefix(x, "sport=") {
					sport = x
					break
				}
			}
			flows[sport] = f[3]
			states[f[3]]++
		}
		tables[h.Name()] = flows
		t.Logf("%s: %d conntrack entries to the VIP by state: %v", h.Name(), len(flows), states)
	}
	for name, flows := range tables {
		if name == owner {
			continue
		}
		var missing []string
		for _, sp := range slices.Sorted(maps.Keys(tables[owner])) {
			if _, ok := flows[sp]; !ok {
				missing = append(missing, fmt.Sprintf("%s (%s)", sp, tables[owner][sp]))
			}
		}
		t.Logf("%s lacks %d of the owner's entries; first: %v", name, len(missing), missing[:min(len(missing), 20)])
	}
}

// backlogDrops sums the packets the kernel's per-CPU input backlogs
// dropped (the second column of /proc/net/softnet_stat, the whole
// machine's: every veth packet of the lab goes through these backlogs,
// net.core.netdev_max_backlog long).
func backlogDrops(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Logf("softnet_stat: %v", err)
		return 0
	}
	var n uint64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err == nil {
			n += v
		}
	}
	return n
}

// claimsSince counts each LB's vip-acquired events logged since t: a new
// owner whose majority blinks under load claims again and again.
func (c *cluster) claimsSince(t0 time.Time) string {
	var parts []string
	for _, h := range c.lbs {
		d := c.daemons[h.Name()]
		if d == nil {
			continue
		}
		n := 0
		for _, l := range linesSince(d, t0) {
			if strings.Contains(l, `"kind":"vip-acquired"`) {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d", h.Name(), n))
	}
	return strings.Join(parts, ", ")
}
