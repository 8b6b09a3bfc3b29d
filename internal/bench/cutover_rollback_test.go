package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/testenv"
)

// rollbackWindow is each rollback step's connect loop: a keepalived that
// hears no VRRP advertisement becomes MASTER after 3 × advert_int plus its
// skew, about 3.6 s at priority 100.
const (
	rollbackWindow = 8 * time.Second
	rollbackSettle = 6 * time.Second
)

// toClassic is the rollback of one LB: stop epconsole, remove the tables
// it leaves in the kernel (when removeTables), start HAProxy and
// keepalived again.
func toClassic(host string, removeTables bool, settle func(*cutLab) error) cutStep {
	what := "stop epconsole, remove its nftables tables, start HAProxy and keepalived"
	if !removeTables {
		what = "stop epconsole, start HAProxy and keepalived (tables left in place)"
	}
	return cutStep{host: host, what: what, settle: settle,
		do: func(c *cutLab, h *netlab.Host, stopped map[string]bool) error {
			err := c.stop(h, "epconsole")
			stopped[h.Name()+"-epconsole"] = true
			if err != nil {
				return err
			}
			if removeTables {
				if err := c.removeTables(h); err != nil {
					return err
				}
			}
			c.startClassicOn(h)
			return nil
		}}
}

// epconsoleTables lists the nftables tables named epconsole* in h's
// namespace, as "FAMILY NAME".
func (c *cutLab) epconsoleTables(h *netlab.Host) ([]string, error) {
	out, err := h.Command(c.ctx, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nft list tables on %s: %v: %s", h.Name(), err, out)
	}
	var tables []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "table" && strings.HasPrefix(f[2], "epconsole") {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// removeTables deletes what a stopped epconsole leaves in the kernel, as
// docs/migration.md's rollback does: `nft list tables | grep epconsole`,
// then `nft delete table FAMILY NAME` for each.
func (c *cutLab) removeTables(h *netlab.Host) error {
	tables, err := c.epconsoleTables(h)
	if err != nil {
		return err
	}
	for _, t := range tables {
		fam, name, _ := strings.Cut(t, " ")
		if out, err := h.Command(c.ctx, "nft", "delete", "table", fam, name).CombinedOutput(); err != nil {
			return fmt.Errorf("nft delete table %s on %s: %v: %s", t, h.Name(), err, out)
		}
	}
	return nil
}

// TestCutoverRollback (EPCONSOLE_DRILL_CUTOVER=1, about a minute) cuts
// over in the documented order, then rolls back to keepalived + HAProxy in
// the same order. lb2 and lb3 are rolled back as documented; lb1 first
// without removing epconsole's tables (the control): the `arp epconsole`
// lease table a stopped daemon leaves drops the host's ARP replies for the
// VIP, so a client that has to resolve the VIP afresh cannot reach the
// VIP keepalived now holds there. After `nft delete table` it can.
func TestCutoverRollback(t *testing.T) {
	if os.Getenv(cutoverEnv) == "" {
		t.Skipf("set %s=1 to drill the rollback (about a minute; root, network namespaces, keepalived and haproxy)", cutoverEnv)
	}
	testenv.NeedNetns(t)
	needRival(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, _ := runOrder(t, ctx, testenv.Binary(t), documentedOrder)
	name := "rollback"
	c.runSteps(name, []cutStep{
		toClassic("lb2", true, holds("lb2", rollbackSettle)),
		toClassic("lb3", true, only(time.Second, rollbackSettle, "lb2")),
		toClassic("lb1", false, only(time.Second, rollbackSettle, "lb1")),
	}, rollbackWindow)
	c.checkRunning(name, "classic")
	lb1 := c.lab.Host("lb1")
	left, err := c.epconsoleTables(lb1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tables the stopped daemon left on lb1: %v", left)
	stale, err := c.connectCheck(false)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := c.connectCheck(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control, tables left on lb1: a client that knows the VIP's MAC: %d of %d connects failed; one that resolves it afresh: %d of %d failed",
		stale.Failures, stale.Attempts, fresh.Failures, fresh.Attempts)
	if fresh.Failures == 0 {
		t.Errorf("control: with epconsole's tables left on lb1 a client resolving the VIP afresh still reached it (%d connects): the ARP lease table did not matter", fresh.Attempts)
	}
	if err := c.removeTables(lb1); err != nil {
		t.Fatal(err)
	}
	c.checkServing("rollback, tables removed on lb1", true)
	if err := c.waitOwners([]string{"lb1"}, time.Second, 5*time.Second); err != nil {
		t.Fatalf("after the rollback: %v", err)
	}
}
