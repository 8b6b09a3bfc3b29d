package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/vishvananda/netns"
)

// kernelState is what a test reads back from one family's epconsole table
// through its own netlink connection.
type kernelState struct {
	chains   map[string]*nftables.Chain
	rules    map[string][]*nftables.Rule
	set      *nftables.Set
	elems    map[int]netip.AddrPort // slot -> backend
	comments []string
}

func readKernel(t *testing.T, ns netns.NsHandle, fam nftables.TableFamily) *kernelState {
	t.Helper()
	c := nftConn(t, ns)
	tables, err := c.ListTablesOfFamily(fam)
	if err != nil {
		t.Fatal(err)
	}
	var tab *nftables.Table
	for _, tb := range tables {
		if tb.Name == TableName {
			tab = tb
		}
	}
	if tab == nil {
		return nil
	}
	st := &kernelState{chains: map[string]*nftables.Chain{}, rules: map[string][]*nftables.Rule{}, elems: map[int]netip.AddrPort{}}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		st.chains[ch.Name] = ch
		rules, err := c.GetRules(tab, ch)
		if err != nil {
			t.Fatal(err)
		}
		st.rules[ch.Name] = rules
		for _, r := range rules {
			st.comments = append(st.comments, RuleComment(r.UserData))
		}
	}
	sets, err := c.GetSets(tab)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 {
		t.Fatalf("%d sets in table, want 1", len(sets))
	}
	st.set = sets[0]
	st.set.Table = tab
	elems, err := c.GetSetElements(st.set)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range elems {
		ap, ok := decodeBackendValue(e.Val)
		if !ok || len(e.Key) != 4 {
			t.Fatalf("undecodable element %x : %x", e.Key, e.Val)
		}
		st.elems[int(binaryutil.NativeEndian.Uint32(e.Key))] = ap
	}
	return st
}

// wantElems is the slot map the kernel should hold for d's family of vip.
func wantElems(t *testing.T, d Desired, vip netip.Addr) map[int]netip.AddrPort {
	t.Helper()
	plans, err := plan(d)
	if err != nil {
		t.Fatal(err)
	}
	p := plans[familyIndex(vip)]
	m := map[int]netip.AddrPort{}
	for s, b := range p.slots {
		if b >= 0 {
			m[s] = p.backends[b].Addr
		}
	}
	return m
}

func ruleHandles(st *kernelState) map[string][]uint64 {
	h := map[string][]uint64{}
	for ch, rules := range st.rules {
		for _, r := range rules {
			h[ch] = append(h[ch], r.Handle)
		}
	}
	return h
}
