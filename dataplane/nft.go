package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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

// mappedKeys returns the (service, backend) keys of the backends that the
// slot map elems holds, for the service of p.
func mappedKeys(p familyPlan, elems []nftables.SetElement) []flowKey {
	svc := netip.AddrPortFrom(p.vip, p.port)
	var out []flowKey
	seen := map[string]bool{}
	for _, e := range elems {
		if seen[string(e.Val)] {
			continue
		}
		seen[string(e.Val)] = true
		if ap, ok := decodeBackendValue(e.Val); ok {
			out = append(out, flowKey{svc, ap})
		}
	}
	return out
}

// cutFlows carries out cutDecision after a commit: it surveys the
// conntrack table on the first call, deletes the flows of the keys to cut
// in one pass, remembers the rest (and the keys whose cut failed), and
// reports the cuts in res.
func (d *Dataplane) cutFlows(ctx context.Context, res *Result, plans [2]familyPlan, mapped []flowKey, states map[netip.AddrPort]backendState) error {
	if !d.flowsKnown {
		var services []netip.AddrPort
		for _, p := range plans {
			if p.vip.IsValid() {
				services = append(services, netip.AddrPortFrom(p.vip, p.port))
			}
		}
		found, err := d.ct.survey(ctx, services)
		if err != nil {
			return fmt.Errorf("surveying conntrack entries: %w", err)
		}
		if d.mayHaveFlows == nil {
			d.mayHaveFlows = map[flowKey]bool{}
		}
		for k := range found {
			d.mayHaveFlows[k] = true
		}
		d.flowsKnown = true
		d.log.Debug("conntrack surveyed", "backends_with_flows", len(found))
	}
	cut, keep := cutDecision(d.mayHaveFlows, mapped, states)
	if len(cut) == 0 {
		d.mayHaveFlows = keep
		return nil
	}
	counts, err := d.ct.deleteFlows(ctx, cut)
	if err != nil {
		// Try again on the next Reconcile: deleting is idempotent.
		for _, k := range cut {
			keep[k] = true
		}
		err = fmt.Errorf("deleting conntrack entries of dead backends: %w", err)
	}
	d.mayHaveFlows = keep
	for _, k := range cut {
		fr := familyResult(res, k.service.Addr())
		fr.Cut = append(fr.Cut, k.backend)
		fr.FlowsDeleted += counts[k]
		d.log.Info("backend dead, its conntrack entries deleted", "vip", k.service, "backend", k.backend, "flows", counts[k])
	}
	return err
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

// queueTable queues the creation of a whole table.
func queueTable(c *nftables.Conn, spec tableSpec) error {
	c.AddTable(spec.table)
	for _, ch := range spec.chains {
		c.AddChain(ch)
	}
	if err := c.AddSet(spec.set, nil); err != nil {
		return fmt.Errorf("queueing slot map: %w", err)
	}
	if err := queueElements(c, spec.set, spec.elems, false); err != nil {
		return err
	}
	for _, r := range spec.rules {
		c.AddRule(r)
	}
	return nil
}

// currentTable is what the kernel holds in one family's epconsole table.
type currentTable struct {
	table  *nftables.Table
	chains []*nftables.Chain
	sets   []*nftables.Set
	elems  []nftables.SetElement // of the slot map, if it exists
	rules  map[string][]*nftables.Rule
}

func findTable(c *nftables.Conn, fam nftables.TableFamily) (*nftables.Table, error) {
	tables, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.Name == TableName && t.Family == fam {
			return t, nil
		}
	}
	return nil, nil
}

// readTable reads the epconsole table of a family, or returns nil if there
// is none.
func readTable(c *nftables.Conn, fam nftables.TableFamily) (*currentTable, error) {
	t, err := findTable(c, fam)
	if err != nil || t == nil {
		return nil, err
	}
	cur := &currentTable{table: t, rules: map[string][]*nftables.Rule{}}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != TableName {
			continue
		}
		cur.chains = append(cur.chains, ch)
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("listing rules of chain %s: %w", ch.Name, err)
		}
		cur.rules[ch.Name] = rules
	}
	cur.sets, err = c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("listing sets: %w", err)
	}
	for _, s := range cur.sets {
		if s.Name != SlotMapName {
			continue
		}
		s.Table = t
		cur.elems, err = c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("listing slot map elements: %w", err)
		}
	}
	return cur, nil
}

// sameStructure reports whether the kernel's table has exactly the chains,
// map definition and rules of spec (elements aside).
func sameStructure(cur *currentTable, spec tableSpec) bool {
	if len(cur.chains) != len(spec.chains) || len(cur.sets) != 1 {
		return false
	}
	for _, want := range spec.chains {
		i := slices.IndexFunc(cur.chains, func(c *nftables.Chain) bool { return c.Name == want.Name })
		if i < 0 || !sameChain(cur.chains[i], want) {
			return false
		}
	}
	if !sameSet(cur.sets[0], spec.set) {
		return false
	}
	for _, ch := range spec.chains {
		var want []*nftables.Rule
		for _, r := range spec.rules {
			if r.Chain == ch {
				want = append(want, r)
			}
		}
		got := cur.rules[ch.Name]
		if len(got) != len(want) {
			return false
		}
		for k := range want {
			if !sameRule(got[k], want[k]) {
				return false
			}
		}
	}
	return true
}

func sameChain(got, want *nftables.Chain) bool {
	eq := func(a, b any) bool { return reflect.DeepEqual(a, b) }
	return got.Type == want.Type && eq(got.Hooknum, want.Hooknum) &&
		eq(got.Priority, want.Priority) && eq(got.Policy, want.Policy)
}

func sameSet(got, want *nftables.Set) bool {
	return got.Name == want.Name && got.IsMap == want.IsMap &&
		!got.Anonymous && !got.Constant && !got.Interval && !got.HasTimeout && !got.Concatenation && !got.Dynamic &&
		got.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() && got.KeyType.Bytes == want.KeyType.Bytes &&
		got.DataType.GetNFTMagic() == want.DataType.GetNFTMagic() && got.DataType.Bytes == want.DataType.Bytes &&
		got.Size == want.Size
}

// sameRule compares a rule read from the kernel with a desired one: the
// comment (which carries a digest of the desired expressions) and the
// expressions themselves as the library decodes them.
func sameRule(got, want *nftables.Rule) bool {
	if string(got.UserData) != string(want.UserData) || len(got.Exprs) != len(want.Exprs) {
		return false
	}
	for i := range want.Exprs {
		if !reflect.DeepEqual(canonicalExpr(got.Exprs[i]), canonicalExpr(want.Exprs[i])) {
			return false
		}
	}
	return true
}

// canonicalExpr drops what the kernel does not report back (or the
// library does not decode), so built and read-back expressions compare
// equal: a lookup's set ID, and the source register of a ct set.
func canonicalExpr(e expr.Any) expr.Any {
	switch x := e.(type) {
	case *expr.Lookup:
		y := *x
		y.SetID = 0
		return &y
	case *expr.Ct:
		y := *x
		if y.SourceRegister {
			y.Register, y.SourceRegister = 0, false
		}
		return &y
	}
	return e
}

// diffElements returns the elements to delete (keys only) and to add so
// that cur becomes want. A slot whose backend changes is deleted and added
// again: the kernel refuses to overwrite a map element's value.
func diffElements(cur, want []nftables.SetElement) (del, add []nftables.SetElement) {
	have := make(map[string][]byte, len(cur))
	for _, e := range cur {
		have[string(e.Key)] = e.Val
	}
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		wanted[string(e.Key)] = true
		v, ok := have[string(e.Key)]
		switch {
		case !ok:
			add = append(add, e)
		case string(v) != string(e.Val):
			del = append(del, nftables.SetElement{Key: e.Key})
			add = append(add, e)
		}
	}
	for _, e := range cur {
		if !wanted[string(e.Key)] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	return del, add
}

// withdrawn returns the backends present in cur's values and absent from
// want's, in address order.
func withdrawn(cur, want []nftables.SetElement) []netip.AddrPort {
	keep := map[string]bool{}
	for _, e := range want {
		keep[string(e.Val)] = true
	}
	seen := map[string]bool{}
	var out []netip.AddrPort
	for _, e := range cur {
		v := string(e.Val)
		if keep[v] || seen[v] {
			continue
		}
		seen[v] = true
		if ap, ok := decodeBackendValue(e.Val); ok {
			out = append(out, ap)
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

func slotsPerBackend(p familyPlan) map[string]int {
	m := map[string]int{}
	for _, b := range p.slots {
		if b >= 0 {
			m[p.backends[b].Name]++
		}
	}
	return m
}

// batchBuffer is the socket buffer size asked for: a whole batch goes out
// in one sendmsg, and a table of 65537 slots per family is ~6 MB.
const batchBuffer = 16 << 20

// setBuffers raises a netlink socket's send and receive buffers, past
// net.core.{w,r}mem_max when CAP_NET_ADMIN allows (SO_*BUFFORCE), else up
// to those limits.
func setBuffers(n int) nftables.SockOption {
	return func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], n) == nil {
					continue
				}
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], n); err != nil {
					serr = err
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// maxElemsPerMessage bounds the elements in one element message: the
// element list is one netlink attribute, whose length field has 16 bits
// (a longer list wraps it, and the kernel then misparses the message).
// 1024 IPv6 elements take ~50 KB. Several messages stay in one batch.
const maxElemsPerMessage = 1024

// queueElements queues adds (or deletes) of elems in messages of at most
// maxElemsPerMessage elements.
func queueElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement, del bool) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMessage) {
		var err error
		if del {
			err = c.SetDeleteElements(s, chunk)
		} else {
			err = c.SetAddElements(s, chunk)
		}
		if err != nil {
			return fmt.Errorf("queueing slot map elements: %w", err)
		}
	}
	return nil
}
