package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/testenv"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

func desired4() Desired {
	return Desired{
		VIPs:     []ServiceVIP{{Addr: vip4, Port: 6443}},
		Backends: backends4(),
		Healthy:  healthySet("cp1", "cp2", "cp3"),
	}
}

func TestDpReconcileInstallsTable(t *testing.T) {
	ns, ctx := kernelTest(t)
	d := newDataplane(t, ns)
	want := desired4()

	res, err := d.Reconcile(ctx, want)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if !res.Committed || len(res.Families) != 1 || res.Families[0].Action != ActionCreated {
		t.Fatalf("first Reconcile: %+v, want one created table", res)
	}
	st := readKernel(t, ns, nftables.TableFamilyIPv4)
	if st == nil {
		t.Fatal("no ip epconsole table after Reconcile")
	}
	for _, name := range []string{ChainPrerouting, ChainOutput, ChainPostrouting, ChainInput, ChainInputNAT, ChainRawPrerouting, ChainRawOutput} {
		if st.chains[name] == nil {
			t.Errorf("chain %s missing", name)
		}
	}
	if len(st.chains) != 7 {
		t.Errorf("%d chains, want 7", len(st.chains))
	}
	if got := st.chains[ChainPrerouting]; got.Type != nftables.ChainTypeNAT || *got.Priority != *nftables.ChainPriorityNATDest {
		t.Errorf("prerouting chain: type %s priority %d", got.Type, *got.Priority)
	}
	if got := st.chains[ChainInput]; got.Type != nftables.ChainTypeFilter || *got.Hooknum != *nftables.ChainHookInput {
		t.Errorf("input chain: type %s hook %d", got.Type, *got.Hooknum)
	}
	if !st.set.IsMap || st.set.KeyType.Bytes != 4 || st.set.DataType.Bytes != 8 || st.set.Size != DefaultSlots {
		t.Errorf("slot map: map=%v key %d bytes, data %d bytes (%s), size %d",
			st.set.IsMap, st.set.KeyType.Bytes, st.set.DataType.Bytes, st.set.DataType.Name, st.set.Size)
	}
	if !reflect.DeepEqual(st.elems, wantElems(t, want, vip4)) {
		t.Errorf("slot map elements differ from BuildSlots (%d elements)", len(st.elems))
	}
	perBackend := map[netip.AddrPort]int{}
	for _, b := range st.elems {
		perBackend[b]++
	}
	for _, b := range backends4() {
		if perBackend[b.Addr] != res.Families[0].SlotsPerBackend[b.Name] || perBackend[b.Addr] < 300 {
			t.Errorf("backend %s holds %d slots in the kernel, result says %d", b.Name, perBackend[b.Addr], res.Families[0].SlotsPerBackend[b.Name])
		}
	}
	t.Logf("slots per backend: %v", res.Families[0].SlotsPerBackend)
	// 9 rules, the co-located SNAT, and two notrack rules for each of the
	// two backend ports (6443, 16443).
	if len(st.comments) != 14 {
		t.Errorf("%d rules, want 14: %q", len(st.comments), st.comments)
	}
	for _, c := range st.comments {
		if !strings.HasPrefix(c, "epconsole: ") {
			t.Errorf("rule comment %q not tagged", c)
		}
	}
	if c := RuleComment(st.rules[ChainPrerouting][0].UserData); !strings.Contains(c, "dnat 198.18.1.100:6443") {
		t.Errorf("prerouting rule comment %q", c)
	}

	// Reconciling the same state sends nothing: the generation stays.
	gen := generation(t, ctx, d)
	res, err = d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed || res.Families[0].Action != ActionUnchanged {
		t.Errorf("second Reconcile: %+v, want nothing sent", res)
	}
	if g := generation(t, ctx, d); g != gen {
		t.Errorf("generation moved from %d to %d on a no-op Reconcile", gen, g)
	}
}

func TestDpHealthyChangeOnlyTouchesElements(t *testing.T) {
	ns, ctx := kernelTest(t)
	d := newDataplane(t, ns)
	want := desired4()
	first, err := d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	before := readKernel(t, ns, nftables.TableFamilyIPv4)
	gen := generation(t, ctx, d)

	steps := []struct {
		desc      string
		healthy   map[string]bool
		withdrawn []netip.AddrPort
	}{
		{"cp2 down", healthySet("cp1", "cp3"), []netip.AddrPort{backends4()[1].Addr}},
		{"all down", nil, []netip.AddrPort{backends4()[0].Addr, backends4()[2].Addr}},
		{"cp3 back", healthySet("cp3"), nil},
		{"all back", healthySet("cp1", "cp2", "cp3"), nil},
	}
	prev := first.Families[0].SlotsPerBackend
	for _, step := range steps {
		want.Healthy = step.healthy
		res, err := d.Reconcile(ctx, want)
		if err != nil {
			t.Fatalf("%s: %v", step.desc, err)
		}
		fr := res.Families[0]
		if !res.Committed || fr.Action != ActionElements {
			t.Fatalf("%s: %+v, want an elements-only change", step.desc, res)
		}
		gen++
		if g := generation(t, ctx, d); g != gen {
			t.Errorf("%s: generation %d, want %d (one commit)", step.desc, g, gen)
		}
		st := readKernel(t, ns, nftables.TableFamilyIPv4)
		if !reflect.DeepEqual(ruleHandles(st), ruleHandles(before)) {
			t.Errorf("%s: rule handles changed: %v -> %v", step.desc, ruleHandles(before), ruleHandles(st))
		}
		if !reflect.DeepEqual(st.elems, wantElems(t, want, vip4)) {
			t.Errorf("%s: kernel map differs from BuildSlots", step.desc)
		}
		if !slices.Equal(fr.Withdrawn, step.withdrawn) {
			t.Errorf("%s: withdrawn %v, want %v", step.desc, fr.Withdrawn, step.withdrawn)
		}
		t.Logf("%s: -%d +%d elements, slots %v", step.desc, fr.ElementsDeleted, fr.ElementsAdded, fr.SlotsPerBackend)
		if step.desc == "cp2 down" && (fr.ElementsDeleted != prev["cp2"] || fr.ElementsAdded != prev["cp2"]) {
			t.Errorf("cp2 down: -%d +%d elements, want exactly cp2's %d slots moved", fr.ElementsDeleted, fr.ElementsAdded, prev["cp2"])
		}
		prev = fr.SlotsPerBackend
	}
	if after := readKernel(t, ns, nftables.TableFamilyIPv4); !reflect.DeepEqual(after.elems, before.elems) {
		t.Errorf("after all backends came back the map differs from the first one")
	}
}

// foreignRuleset creates tables that are not epconsole's: ip filter with an
// input chain and a rule, ip6 nat with a prerouting chain (same chain name
// as ours), and an inet table named epconsole (our name, not our family).
func foreignRuleset(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	c := nftConn(t, ns)
	accept := nftables.ChainPolicyAccept
	filter := c.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: filter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: filter, Chain: in, Exprs: []expr.Any{
		// ip saddr 198.18.1.50 counter accept
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 18, 1, 50}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	nat6 := c.AddTable(&nftables.Table{Name: "nat", Family: nftables.TableFamilyIPv6})
	c.AddChain(&nftables.Chain{Name: ChainPrerouting, Table: nat6, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	inet := c.AddTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	c.AddChain(&nftables.Chain{Name: "other", Table: inet})
	if err := c.Flush(); err != nil {
		t.Fatalf("creating foreign ruleset: %v", err)
	}
}

// foreignSnapshot lists every chain and rule outside epconsole's ip/ip6
// tables, with handles and expressions.
func foreignSnapshot(t *testing.T, ns netns.NsHandle) []string {
	t.Helper()
	c := nftConn(t, ns)
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ch := range chains {
		fam := ch.Table.Family
		if ch.Table.Name == TableName && (fam == nftables.TableFamilyIPv4 || fam == nftables.TableFamilyIPv6) {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		line := []string{familyName(fam) + "/" + ch.Table.Name + "/" + ch.Name}
		for _, r := range rules {
			line = append(line, reflectString(r.Handle, r.Exprs))
		}
		out = append(out, strings.Join(line, " | "))
	}
	slices.Sort(out)
	return out
}

func reflectString(h uint64, exprs []expr.Any) string {
	parts := []string{fmt.Sprintf("handle %d", h)}
	for _, e := range exprs {
		parts = append(parts, fmt.Sprintf("%T%+v", e, e))
	}
	return strings.Join(parts, " ")
}

func TestDpForeignTablesUntouched(t *testing.T) {
	ns, ctx := kernelTest(t)
	foreignRuleset(t, ns)
	before := foreignSnapshot(t, ns)
	if len(before) != 3 {
		t.Fatalf("foreign ruleset: %q", before)
	}
	d := newDataplane(t, ns)
	want := desired4()
	want.VIPs = append(want.VIPs, ServiceVIP{Addr: vip6})
	want.Backends = append(want.Backends, backends6()...)
	want.Healthy = healthySet("cp1", "cp2", "cp3", "cp1v6", "cp2v6")
	if _, err := d.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	want.Healthy = healthySet("cp1", "cp1v6")
	if _, err := d.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := foreignSnapshot(t, ns); !slices.Equal(got, before) {
		t.Errorf("foreign ruleset changed by Reconcile:\n got %q\nwant %q", got, before)
	}
	if err := d.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if readKernel(t, ns, nftables.TableFamilyIPv4) != nil || readKernel(t, ns, nftables.TableFamilyIPv6) != nil {
		t.Error("epconsole tables still present after Remove")
	}
	if got := foreignSnapshot(t, ns); !slices.Equal(got, before) {
		t.Errorf("foreign ruleset changed by Remove:\n got %q\nwant %q", got, before)
	}
	// Remove is idempotent and then sends nothing.
	gen := generation(t, ctx, d)
	if err := d.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if g := generation(t, ctx, d); g != gen {
		t.Errorf("second Remove moved the generation %d -> %d", gen, g)
	}
}

func TestDpAdoptsExistingTable(t *testing.T) {
	ns, ctx := kernelTest(t)
	want := desired4()
	want.Healthy = healthySet("cp1", "cp3")
	old := newDataplane(t, ns)
	if _, err := old.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	before := readKernel(t, ns, nftables.TableFamilyIPv4)

	// A new process (a second Dataplane, opening the namespace by path)
	// with the same desired state adopts the table without sending anything.
	d, err := New(WithNetNSPath(fmt.Sprintf("/proc/self/fd/%d", int(ns))), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	gen := generation(t, ctx, d)
	res, err := d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Committed || res.Families[0].Action != ActionUnchanged {
		t.Errorf("adopting: %+v, want nothing sent", res)
	}
	if g := generation(t, ctx, d); g != gen {
		t.Errorf("adopting moved the generation %d -> %d", gen, g)
	}
	if after := readKernel(t, ns, nftables.TableFamilyIPv4); !reflect.DeepEqual(ruleHandles(after), ruleHandles(before)) {
		t.Errorf("adopting changed rule handles")
	}

	// A changed rule (another service port) replaces the table: delete and
	// add in one batch, one commit.
	want.VIPs[0].Port = 7443
	want.Mode = BalanceSource
	res, err = d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Committed || res.Families[0].Action != ActionReplaced {
		t.Errorf("changed port: %+v, want the table replaced", res)
	}
	if g := generation(t, ctx, d); g != gen+1 {
		t.Errorf("replacing took generation %d -> %d, want one commit", gen, g)
	}
	st := readKernel(t, ns, nftables.TableFamilyIPv4)
	if c := RuleComment(st.rules[ChainPrerouting][0].UserData); !strings.Contains(c, "198.18.1.100:7443") {
		t.Errorf("prerouting rule after replace: %q", c)
	}
	if !reflect.DeepEqual(st.elems, wantElems(t, want, vip4)) {
		t.Errorf("map after replace differs from BuildSlots")
	}
	// And the replaced table is again stable.
	res, err = d.Reconcile(ctx, want)
	if err != nil || res.Committed {
		t.Errorf("Reconcile after replace: %+v, %v; want nothing sent", res, err)
	}
}

func TestDpDualStack(t *testing.T) {
	ns, ctx := kernelTest(t)
	d := newDataplane(t, ns)
	want := Desired{
		VIPs:     serviceVIPs(vip4, vip6),
		Backends: append(backends4(), backends6()...),
		Healthy:  healthySet("cp1", "cp2", "cp1v6", "cp2v6", "cp3v6"),
		Slots:    509,
	}
	gen := generation(t, ctx, d)
	res, err := d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Families) != 2 || res.Families[0].Action != ActionCreated || res.Families[1].Action != ActionCreated {
		t.Fatalf("dual stack: %+v", res)
	}
	if g := generation(t, ctx, d); g != gen+1 {
		t.Errorf("both tables took generation %d -> %d, want one commit", gen, g)
	}
	st6 := readKernel(t, ns, nftables.TableFamilyIPv6)
	if st6 == nil {
		t.Fatal("no ip6 table")
	}
	if st6.set.DataType.Bytes != 20 || st6.set.Size != 509 {
		t.Errorf("ip6 slot map: data %d bytes, size %d", st6.set.DataType.Bytes, st6.set.Size)
	}
	if !reflect.DeepEqual(st6.elems, wantElems(t, want, vip6)) {
		t.Errorf("ip6 map differs from BuildSlots")
	}
	if c := RuleComment(st6.rules[ChainPrerouting][0].UserData); !strings.Contains(c, "[fd00:198:18:1::100]:6443") {
		t.Errorf("ip6 prerouting rule: %q", c)
	}
	if res, err := d.Reconcile(ctx, want); err != nil || res.Committed {
		t.Errorf("second dual-stack Reconcile: %+v, %v; want nothing sent", res, err)
	}

	// Dropping the IPv4 VIP removes the ip table and leaves ip6 alone.
	before6 := ruleHandles(st6)
	want.VIPs = serviceVIPs(vip6)
	res, err = d.Reconcile(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Families) != 2 || res.Families[0].Action != ActionRemoved || res.Families[1].Action != ActionUnchanged {
		t.Errorf("IPv4 VIP dropped: %+v", res)
	}
	if readKernel(t, ns, nftables.TableFamilyIPv4) != nil {
		t.Error("ip table still present")
	}
	if got := ruleHandles(readKernel(t, ns, nftables.TableFamilyIPv6)); !reflect.DeepEqual(got, before6) {
		t.Errorf("ip6 rules changed: %v -> %v", before6, got)
	}
}

func TestDpTamperedTableIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		tamper func(t *testing.T, c *nftables.Conn, st *kernelState)
	}{
		{"rule expressions changed, comment kept", func(t *testing.T, c *nftables.Conn, st *kernelState) {
			r := st.rules[ChainPrerouting][0]
			// Our own builder with another seed (rules read back cannot be
			// sent again: the library drops a ct set's source register).
			plans, err := plan(desired4())
			if err != nil {
				t.Fatal(err)
			}
			plans[0].seed++
			exprs := dnatExprs(plans[0], true)
			c.ReplaceRule(&nftables.Rule{Table: r.Table, Chain: r.Chain, Handle: r.Handle, Exprs: exprs, UserData: r.UserData})
		}},
		{"rule deleted", func(t *testing.T, c *nftables.Conn, st *kernelState) {
			r := st.rules[ChainInput][3]
			if err := c.DelRule(r); err != nil {
				t.Fatal(err)
			}
		}},
		{"extra chain in our table", func(t *testing.T, c *nftables.Conn, st *kernelState) {
			c.AddChain(&nftables.Chain{Name: "extra", Table: st.set.Table})
		}},
		{"chain priority changed", func(t *testing.T, c *nftables.Conn, st *kernelState) {
			ch := st.chains[ChainInput]
			c.DelChain(ch)
			accept := nftables.ChainPolicyAccept
			c.AddChain(&nftables.Chain{Name: ChainInput, Table: st.set.Table, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(10), Policy: &accept})
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ns, ctx := kernelTest(t)
			d := newDataplane(t, ns)
			want := desired4()
			if _, err := d.Reconcile(ctx, want); err != nil {
				t.Fatal(err)
			}
			c := nftConn(t, ns)
			tc.tamper(t, c, readKernel(t, ns, nftables.TableFamilyIPv4))
			if err := c.Flush(); err != nil {
				t.Fatalf("tampering: %v", err)
			}
			res, err := d.Reconcile(ctx, want)
			if err != nil {
				t.Fatal(err)
			}
			if res.Families[0].Action != ActionReplaced {
				t.Fatalf("after tampering: %+v, want the table replaced", res.Families[0])
			}
			if res, err := d.Reconcile(ctx, want); err != nil || res.Committed {
				t.Errorf("after repair: %+v, %v; want nothing sent", res, err)
			}
		})
	}
}

// TestDpLargeSlotMap uses a map whose element list is far beyond one
// netlink attribute (64 KB): the elements go out in several messages of
// one batch, and the kernel holds exactly the computed map.
func TestDpLargeSlotMap(t *testing.T) {
	ns, ctx := kernelTest(t)
	d := newDataplane(t, ns)
	want := Desired{
		VIPs:     serviceVIPs(vip4, vip6),
		Backends: append(backends4(), backends6()...),
		Healthy:  healthySet("cp1", "cp2", "cp3", "cp1v6", "cp2v6", "cp3v6"),
		Slots:    8191,
	}
	for _, step := range []string{"create", "cp2 down", "replace"} {
		switch step {
		case "cp2 down":
			want.Healthy = healthySet("cp1", "cp3", "cp1v6", "cp3v6")
		case "replace":
			for i := range want.VIPs {
				want.VIPs[i].Port = 7443
			}
		}
		gen := generation(t, ctx, d)
		if _, err := d.Reconcile(ctx, want); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if g := generation(t, ctx, d); g != gen+1 {
			t.Errorf("%s: generation %d -> %d, want one commit", step, gen, g)
		}
		for _, vip := range Addresses(want.VIPs) {
			st := readKernel(t, ns, tableFamily(vip.Is6()))
			if len(st.elems) != 8191 || !reflect.DeepEqual(st.elems, wantElems(t, want, vip)) {
				t.Errorf("%s: %v map (%d elements) differs from BuildSlots", step, vip, len(st.elems))
			}
		}
		if res, err := d.Reconcile(ctx, want); err != nil || res.Committed {
			t.Errorf("%s: repeated Reconcile %+v, %v; want nothing sent", step, res, err)
		}
	}
}

// BenchmarkDpReconcileNoop measures a Reconcile that finds the kernel
// already right (reads everything back, sends nothing): the cost of a
// periodic reconcile.
func BenchmarkDpReconcileNoop(b *testing.B) { benchReconcile(b, false) }

// BenchmarkDpReconcileHealthFlip measures a Reconcile that moves one
// backend's slots (elements only), alternating between two healthy sets.
func BenchmarkDpReconcileHealthFlip(b *testing.B) { benchReconcile(b, true) }

func benchReconcile(b *testing.B, flip bool) {
	testenv.NeedNetns(b)
	ns, err := benchNetNS()
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	d, err := New(WithNetNSFd(int(ns)), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	want := desired4()
	ctx := context.Background()
	if _, err := d.Reconcile(ctx, want); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if flip {
			i++
			want.Healthy = healthySet("cp1", "cp2", "cp3")
			if i%2 == 1 {
				delete(want.Healthy, "cp2")
			}
		}
		if _, err := d.Reconcile(ctx, want); err != nil {
			b.Fatal(err)
		}
	}
}
