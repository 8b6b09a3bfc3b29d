package drills

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
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
