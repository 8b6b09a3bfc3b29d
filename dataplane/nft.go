package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/google/nftables"
)

// Dataplane programs epconsole's nftables tables in one network namespace
// and deletes the conntrack entries of backends that die (see
// Desired.Drain for backends that leave the slot map alive).
// Its methods are safe for concurrent use; changes are serialised.
type Dataplane struct {
	ns         netNS
	log        *slog.Logger
	ct         *Conntrack
	flushFlows bool

	mu sync.Mutex
	// mayHaveFlows holds the (service, backend) pairs that may have
	// established flows: every backend mapped by an earlier Reconcile and
	// not cut since, plus what the first survey found. Reconcile so cuts a
	// dead backend once, without dumping the conntrack table on every
	// call. flowsKnown is false until that survey has run (a new Dataplane
	// knows nothing of an earlier process's flows).
	mayHaveFlows map[flowKey]bool
	flowsKnown   bool
}

// Action says what Reconcile did to one family's table.
type Action string

// Actions of Reconcile.
const (
	ActionUnchanged Action = "unchanged" // nothing sent
	ActionCreated   Action = "created"   // the table did not exist
	ActionReplaced  Action = "replaced"  // delete + add of the table in the batch
	ActionElements  Action = "elements"  // only slot map elements changed
	ActionRemoved   Action = "removed"   // no VIP of this family any more
)

// FamilyResult reports one family's part of a Reconcile.
type FamilyResult struct {
	Family string // "ip" or "ip6"
	VIP    netip.Addr
	Action Action
	// ElementsDeleted and ElementsAdded count slot map element changes
	// (a slot that moves counts once in each).
	ElementsDeleted, ElementsAdded int
	// SlotsPerBackend is the number of slots each backend holds now, by
	// name (healthy backends only).
	SlotsPerBackend map[string]int
	// Withdrawn lists backends that held slots before and hold none now
	// (dead or draining).
	Withdrawn []netip.AddrPort
	// Cut lists the dead backends whose established flows this Reconcile
	// deleted: those that may still have had flows (it held slots since
	// its last cut, or a survey found flows). A backend is cut once; a
	// draining one never.
	Cut []netip.AddrPort
	// FlowsDeleted counts the conntrack entries deleted for Cut.
	FlowsDeleted int
}

// Result reports what Reconcile did.
type Result struct {
	Families []FamilyResult
	// Committed is true when a batch was sent (the ruleset generation
	// moved); false when the kernel already held the desired state.
	Committed bool
}

// New returns a Dataplane for the namespace given by the options (default:
// the calling process's namespace). It does not touch the kernel.
func New(opts ...Option) (*Dataplane, error) {
	o := buildOptions(opts)
	ns, err := openNetNS(o)
	if err != nil {
		return nil, err
	}
	return &Dataplane{
		ns:         ns,
		log:        o.log,
		ct:         &Conntrack{ns: netNS{fd: ns.fd}, log: o.log},
		flushFlows: o.flushFlows,
	}, nil
}

// Close releases the namespace handle if the Dataplane opened it. The
// tables stay in the kernel (use Remove to delete them).
func (d *Dataplane) Close() error { return d.ns.close() }

// Conntrack returns the Dataplane's conntrack access (same namespace).
func (d *Dataplane) Conntrack() *Conntrack { return d.ct }

func (d *Dataplane) conn() (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(setBuffers(batchBuffer))}
	if d.ns.fd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(d.ns.fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	return c, nil
}

var families = [2]nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyIPv6 {
		return "ip6"
	}
	return "ip"
}

// Reconcile makes the kernel hold exactly the tables that want describes,
// in one netlink batch, and sends nothing when it already does. When only
// the healthy set changed, only slot map elements change (the rules stay);
// any other difference replaces the table by a delete and an add inside the
// same batch, which the kernel commits atomically (no gap in which packets
// see no rules). An existing table (from an earlier process) is adopted
// as it is when it equals the desired state. After the commit, the
// conntrack entries of dead backends (neither healthy nor draining, or no
// longer configured) are deleted, on every Reconcile that finds such a
// backend with flows possibly left, and only then: see cutDecision
// (switched off with WithConntrackFlush(false)). The first Reconcile of a
// Dataplane surveys the conntrack table once to learn which backends hold
// flows (an earlier process may have drained some).
func (d *Dataplane) Reconcile(ctx context.Context, want Desired) (Result, error) {
	plans, err := plan(want)
	if err != nil {
		return Result{}, fmt.Errorf("desired state: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	c, err := d.conn()
	if err != nil {
		return Result{}, err
	}
	defer c.CloseLasting()

	var res Result
	queued := false
	var mapped []flowKey // backends that held or hold slots, by service
	for i, fam := range families {
		p := plans[i]
		cur, err := readTable(c, fam)
		if err != nil {
			return Result{}, fmt.Errorf("reading table %s %s: %w", familyName(fam), TableName, err)
		}
		if !p.vip.IsValid() {
			if cur != nil {
				c.DelTable(cur.table)
				queued = true
				res.Families = append(res.Families, FamilyResult{Family: familyName(fam), Action: ActionRemoved})
			}
			continue
		}
		spec := buildTable(p)
		fr := FamilyResult{Family: familyName(fam), VIP: p.vip, Action: ActionUnchanged, SlotsPerBackend: slotsPerBackend(p)}
		switch {
		case cur == nil:
			if err := queueTable(c, spec); err != nil {
				return Result{}, err
			}
			fr.Action, fr.ElementsAdded = ActionCreated, len(spec.elems)
		case !sameStructure(cur, spec):
			c.DelTable(spec.table)
			if err := queueTable(c, spec); err != nil {
				return Result{}, err
			}
			fr.Action, fr.ElementsDeleted, fr.ElementsAdded = ActionReplaced, len(cur.elems), len(spec.elems)
		default:
			del, add := diffElements(cur.elems, spec.elems)
			if err := queueElements(c, spec.set, del, true); err != nil {
				return Result{}, err
			}
			if err := queueElements(c, spec.set, add, false); err != nil {
				return Result{}, err
			}
			if len(del)+len(add) > 0 {
				fr.Action, fr.ElementsDeleted, fr.ElementsAdded = ActionElements, len(del), len(add)
			}
		}
		if fr.Action != ActionUnchanged {
			queued = true
		}
		if cur != nil {
			fr.Withdrawn = withdrawn(cur.elems, spec.elems)
			mapped = append(mapped, mappedKeys(p, cur.elems)...)
		}
		mapped = append(mapped, mappedKeys(p, spec.elems)...)
		res.Families = append(res.Families, fr)
	}
	if queued {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if err := c.Flush(); err != nil {
			return Result{}, fmt.Errorf("committing nftables batch: %w", err)
		}
		res.Committed = true
		for _, fr := range res.Families {
			d.log.Info("nftables table reconciled", "family", fr.Family, "vip", fr.VIP, "action", string(fr.Action),
				"elements_deleted", fr.ElementsDeleted, "elements_added", fr.ElementsAdded)
		}
	}
	states := backendStates(plans, want.Healthy, want.Drain)
	for _, fr := range res.Families {
		for _, b := range fr.Withdrawn {
			if states[b] == stateDraining {
				d.log.Info("backend draining: no new flows, established ones kept", "vip", fr.VIP, "backend", b)
			}
		}
	}
	if !d.flushFlows {
		return res, nil
	}
	return res, d.cutFlows(ctx, &res, plans, mapped, states)
}

// familyResult returns the entry of res for vip's family, adding one when
// the Reconcile had none (cuts through a service that is gone).
func familyResult(res *Result, vip netip.Addr) *FamilyResult {
	name := familyName(tableFamily(vip.Is6()))
	for i := range res.Families {
		if res.Families[i].Family == name {
			return &res.Families[i]
		}
	}
	res.Families = append(res.Families, FamilyResult{Family: name, VIP: vip, Action: ActionUnchanged})
	return &res.Families[len(res.Families)-1]
}

// Remove deletes epconsole's tables (both families) in one batch. Other
// tables are not touched. Removing absent tables is not an error.
func (d *Dataplane) Remove(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.conn()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	queued := false
	for _, fam := range families {
		t, err := findTable(c, fam)
		if err != nil {
			return fmt.Errorf("listing %s tables: %w", familyName(fam), err)
		}
		if t != nil {
			c.DelTable(t)
			queued = true
		}
	}
	if !queued {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting tables: %w", err)
	}
	d.log.Info("nftables tables removed")
	return nil
}

// Generation returns the nftables ruleset generation of the namespace
// (NFT_MSG_GETGEN). Every committed batch moves it, so an unchanged
// generation proves that nothing was committed in between.
func (d *Dataplane) Generation(ctx context.Context) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return ruleGeneration(d.ns.fd)
}
