package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// FileValue is one file's side of a Difference.
type FileValue struct {
	File string
	// At is where the value is written (the block, or the file's start,
	// for a default; the file's start when Absent).
	At      hcl.Range
	Value   string
	Default bool
	// Absent: the file does not have the setting (the block is missing).
	Absent bool
	// Note names the setting the value comes from when it is not Path
	// itself ("node.gossip_advertise" for a peer's address).
	Note string
}

// String is `a.hcl:40 198.18.0.22`, `b.hcl 24301 (default)` or `c.hcl (none)`.
func (v FileValue) String() string {
	switch {
	case v.Absent:
		return v.File + " (none)"
	case v.Default:
		return fmt.Sprintf("%s %s (default)", v.File, v.Value)
	}
	s := fmt.Sprintf("%s:%d %s", v.File, v.At.Start.Line, v.Value)
	if v.Note != "" {
		s += " (" + v.Note + ")"
	}
	return s
}

// Difference is a setting that is not the same in every file of a cluster.
type Difference struct {
	// Path is the setting (Setting.Path, `node.name` or `peer "lb1".address`).
	Path string
	// Order: the backends are the same but in another order.
	Order bool
	// Why says what the difference breaks and how to fix it.
	Why string
	// Values has one entry per file involved, in the order the files were given.
	Values []FileValue
}

// String is the difference on one line:
// `backend "cp2".address: a.hcl:40 198.18.0.22, b.hcl:40 198.18.0.23`.
func (d Difference) String() string {
	parts := make([]string, len(d.Values))
	for i, v := range d.Values {
		parts[i] = v.String()
	}
	return d.Path + ": " + strings.Join(parts, ", ")
}

// Diagnostic is d as an error diagnostic: the setting path as summary, the
// values and the reason as detail, and as subject the first file whose
// value is not the one most files have.
func (d Difference) Diagnostic() *hcl.Diagnostic {
	count := map[string]int{}
	key := func(v FileValue) string {
		if v.Absent {
			return "\x00absent"
		}
		return v.Value
	}
	for _, v := range d.Values {
		count[key(v)]++
	}
	ref := key(d.Values[0])
	for _, v := range d.Values {
		if count[key(v)] > count[ref] {
			ref = key(v)
		}
	}
	subject := d.Values[0].At
	for _, v := range d.Values {
		if key(v) != ref {
			subject = v.At
			break
		}
	}
	rest := strings.TrimPrefix(d.String(), d.Path+": ")
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  d.Path,
		Detail:   "differs between the files: " + rest + ". " + d.Why,
		Subject:  &subject,
	}
}

const (
	whyDigest    = "It is part of the config digest: make it the same in every file, or peers map flows differently and a mismatched peer is not picked as owner."
	whyOrder     = "The backends are the same but in another order, and the slot map is built in config order: list them in the same order in every file."
	whyHeartbeat = "Every peer beats to the others on these settings: make them the same in every file."
)

// Compare compares the cluster-wide settings (ClusterWide) of the configs
// of one cluster's nodes, and their node and peer blocks against each
// other: every node is a peer, at its advertised address, in every other
// file; no two files describe the same node. It returns every difference,
// in the order of the settings; none when the configs agree.
func Compare(cfgs []*Config) []Difference {
	if len(cfgs) < 2 {
		return nil
	}
	bySetting := make([]map[string]Setting, len(cfgs))
	var paths []string
	seen := map[string]bool{}
	for i, c := range cfgs {
		bySetting[i] = map[string]Setting{}
		for _, s := range c.ClusterWide() {
			bySetting[i][s.Path] = s
			if !seen[s.Path] {
				seen[s.Path] = true
				paths = append(paths, s.Path)
			}
		}
	}
	paths = orderLast(paths)
	var out []Difference
	skip := map[string]bool{} // blocks reported as missing: not their settings
	sameBackends := true
	for _, p := range paths {
		if skip[blockOf(p)] {
			continue
		}
		vals := make([]FileValue, len(cfgs))
		absent, block := false, false
		for i, c := range cfgs {
			s, ok := bySetting[i][p]
			if !ok {
				vals[i] = FileValue{File: c.File, At: fileStart(c.File), Absent: true}
				absent = true
				continue
			}
			block = block || s.Block
			vals[i] = FileValue{File: c.File, At: s.At, Value: s.Value, Default: s.Default}
		}
		if block {
			if absent {
				skip[p] = true
				if strings.HasPrefix(p, `backend "`) {
					sameBackends = false
				}
				out = append(out, Difference{Path: p, Why: whyOf(p), Values: vals})
			}
			continue
		}
		if p == "backend order" {
			if !sameBackends || allSame(vals) {
				continue
			}
			for i := range vals {
				vals[i].Value = "[" + vals[i].Value + "]"
			}
			out = append(out, Difference{Path: p, Order: true, Why: whyOrder, Values: vals})
			continue
		}
		if !allSame(vals) {
			out = append(out, Difference{Path: p, Why: whyOf(p), Values: vals})
		}
	}
	return append(out, comparePeers(cfgs)...)
}

// orderLast moves "backend order" after the last backend's settings, so
// the order is compared once every backend's presence is known.
func orderLast(paths []string) []string {
	out := make([]string, 0, len(paths))
	last := -1
	for _, p := range paths {
		if p == "backend order" {
			continue
		}
		if strings.HasPrefix(p, `backend "`) {
			last = len(out)
		}
		out = append(out, p)
	}
	return slices.Insert(out, last+1, "backend order")
}

// blockOf is the block a setting path is in (`backend "cp2"` for
// `backend "cp2".port`), or "".
func blockOf(path string) string {
	if i := strings.LastIndex(path, "."); i > 0 {
		return path[:i]
	}
	return ""
}

func whyOf(path string) string {
	if strings.HasPrefix(path, "gossip.") {
		return whyHeartbeat
	}
	return whyDigest
}

func allSame(vals []FileValue) bool {
	for _, v := range vals[1:] {
		if v.Absent != vals[0].Absent || v.Value != vals[0].Value {
			return false
		}
	}
	return true
}

func fileStart(file string) hcl.Range {
	return hcl.Range{Filename: file, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// comparePeers checks the files' node blocks against each other's peer
// blocks.
func comparePeers(cfgs []*Config) []Difference {
	var out []Difference
	byName := map[string][]int{}
	var names []string
	for i, c := range cfgs {
		n := c.Node.Name
		if len(byName[n]) == 0 {
			names = append(names, n)
		}
		byName[n] = append(byName[n], i)
	}
	for _, n := range names {
		if idx := byName[n]; len(idx) > 1 {
			var vals []FileValue
			for _, i := range idx {
				vals = append(vals, nodeValue(cfgs[i], "node.name", n))
			}
			out = append(out, Difference{Path: "node.name", Values: vals,
				Why: "These files describe the same node: give every node its own name (and each file its own node)."})
		}
	}
	for i, self := range cfgs {
		if len(byName[self.Node.Name]) > 1 {
			continue
		}
		for j, other := range cfgs {
			if i == j {
				continue
			}
			key := fmt.Sprintf("peer %q", self.Node.Name)
			var peer *Peer
			for k := range other.Peers {
				if other.Peers[k].Name == self.Node.Name {
					peer = &other.Peers[k]
				}
			}
			switch {
			case peer == nil:
				out = append(out, Difference{Path: key,
					Values: []FileValue{nodeValue(self, "node.name", self.Node.Name), {File: other.File, At: fileStart(other.File), Absent: true}},
					Why:    fmt.Sprintf("%s is node %s, so %s needs a peer %q block with address = %q.", self.File, self.Node.Name, other.File, self.Node.Name, self.Node.GossipAdvertise)})
			case peer.Address != self.Node.GossipAdvertise:
				at, _ := other.Where(key + ".address")
				adv := "node.gossip_advertise"
				if _, ok := self.Where(adv); !ok {
					adv = "node.gossip_bind"
				}
				out = append(out, Difference{Path: key + ".address",
					Values: []FileValue{nodeValue(self, adv, self.Node.GossipAdvertise.String()), {File: other.File, At: at, Value: peer.Address.String()}},
					Why:    fmt.Sprintf("A peer's address is the address that node advertises: set it to %s in %s, or fix node.gossip_advertise in %s.", self.Node.GossipAdvertise, other.File, self.File)})
			}
		}
	}
	return out
}

// nodeValue is c's value of a node setting, noted with its name.
func nodeValue(c *Config, path, value string) FileValue {
	at, ok := c.Where(path)
	if !ok {
		at = fileStart(c.File)
	}
	return FileValue{File: c.File, At: at, Value: value, Note: path}
}
