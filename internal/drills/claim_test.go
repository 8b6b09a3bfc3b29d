package drills

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// The helper-claim drills' segment: namespaces "clm*", 198.18.160.0/24 and
// fd00:198:18:160::/64.
var (
	claimNet4 = netip.MustParsePrefix("198.18.160.0/24")
	claimNet6 = netip.MustParsePrefix("fd00:198:18:160::/64")
)

// adoptedLine is what the successor's daemon logs when it adopts its
// heartbeat helper's claim (internal/daemon/claim.go).
const adoptedLine = "the heartbeat helper claimed the VIP; adopted"

// TestHelperClaim: the owner's cable is pulled; the successor's heartbeat
// helper claims the VIP itself — the lease, the address, the gratuitous
// ARP — before its daemon acts, and the daemon adopts the claim (the
// timeline is logged: last beat seen, verdict, lease, address, ARP sent).
// The control runs the daemons with --no-helper-claim: the daemon claims
// after the helper's verdict reaches it, and no helper claims.
func TestHelperClaim(t *testing.T) {
	var dark, control time.Duration
	t.Run("helper-claims", func(t *testing.T) {
		dark = helperClaimFailover(t, "clm", true)
	})
	t.Run("control-daemon-claims", func(t *testing.T) {
		control = helperClaimFailover(t, "clmo", false, "--no-helper-claim")
	})
	t.Logf("client dark time: helper claims %s, daemon claims (control) %s", dark.Round(time.Millisecond), control.Round(time.Millisecond))
}

// helperClaimFailover pulls the owner's cable and checks who claimed on
// the successor; it returns the client's dark time.
func helperClaimFailover(t *testing.T, prefix string, helperClaims bool, args ...string) time.Duration {
	c, owner := newClusterWith(t, prefix, 60*time.Second, clusterOpts{args: args, net4: claimNet4, net6: claimNet6})
	loop, err := c.client.StartTCPConnect(c.ctx, netlab.TCPConnectOpts{
		Target: netipPort(c), Every: 5 * time.Millisecond, Timeout: 20 * time.Millisecond, Duration: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	// What the daemons logged before the pull (a start-up hiccup may move
	// the VIP once) is not this failover's.
	pulled := time.Now()
	if err := c.lab.Host(owner).SetCable(false); err != nil {
		t.Fatal(err)
	}
	res, err := loop.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	newOwner := c.waitOneOwnerAmong(5*time.Second, owner)
	d := c.daemons[newOwner]
	t.Logf("owner %s cable pulled; new owner %s; client dark time %s, %d of %d connects failed",
		owner, newOwner, res.LongestGap.Round(time.Millisecond), res.Failures, res.Attempts)
	if res.LastSuccess <= res.LastFailure {
		t.Errorf("the loop never reached the VIP again after its last failure (%s): %v", res.LastFailure, res.Errors)
	}
	if !helperClaims {
		time.Sleep(200 * time.Millisecond)
		if logSince(d, pulled, adoptedLine) {
			c.dumpLog(d)
			t.Fatalf("%s: a helper claimed with --no-helper-claim", newOwner)
		}
		if !logSince(d, pulled, `"msg":"decision"`, `"hold":true`, "claims the VIP") {
			c.dumpLog(d)
			t.Fatalf("%s: the daemon's own claim is not in its log", newOwner)
		}
		return res.LongestGap
	}
	if os.Getenv("EPCONSOLE_DRILL_KEEP_LOGS") != "" {
		t.Cleanup(func() {
			for name, dd := range c.daemons {
				if b, err := os.ReadFile(dd.logPath); err == nil {
					_ = os.WriteFile(filepath.Join(os.Getenv("EPCONSOLE_DRILL_KEEP_LOGS"), prefix+"-"+name+".log"), b, 0o644)
				}
			}
		})
	}
	c.waitLog(d, 2*time.Second, adoptedLine)
	for _, l := range linesSince(d, pulled) {
		if !strings.Contains(l, adoptedLine) {
			continue
		}
		var e struct {
			Trace        string `json:"trace"`
			OK           bool   `json:"ok"`
			AdoptedAfter string `json:"adopted_after"`
			Epoch        uint64 `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s: %v in %s", newOwner, err, l)
		}
		t.Logf("%s's helper claimed with epoch %d: %s; the daemon adopted it %s after the announcement", newOwner, e.Epoch, e.Trace, e.AdoptedAfter)
		if !e.OK {
			t.Errorf("%s: a step of the helper's claim failed: %s", newOwner, l)
		}
	}
	// The daemon adopted the helper's claim instead of claiming itself:
	// no decision of its own says "claims the VIP", and nothing was undone.
	if logSince(d, pulled, `"msg":"decision"`, `"hold":true`, "claims the VIP") {
		c.dumpLog(d)
		t.Errorf("%s: the daemon claimed by itself as well", newOwner)
	}
	for _, name := range []string{"lb1", "lb2", "lb3"} {
		if dd := c.daemons[name]; dd != nil && logSince(dd, pulled, "helper-claim-undone") {
			c.dumpLog(dd)
			t.Errorf("%s undid a helper's claim", name)
		}
	}
	return res.LongestGap
}
