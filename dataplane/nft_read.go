package dataplane

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

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
