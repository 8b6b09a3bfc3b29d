package preflight

import "fmt"

// Table is a foreign nftables table as Gather read it (never one of
// epconsole's own).
type Table struct {
	// Family is the nft family name: ip, ip6, inet, arp, bridge, netdev.
	Family string  `json:"family"`
	Name   string  `json:"name"`
	Chains []Chain `json:"chains"`
	// Sets are the table's plain sets by name (the rules already refer
	// to them; kept for inspection).
	Sets map[string]*SetFacts `json:"-"`
}

// Chain is one chain of a Table with its decoded rules.
type Chain struct {
	Name string `json:"name"`
	// Hook is prerouting, input, forward, output, postrouting, ingress or
	// egress for a base chain, "" for a regular chain.
	Hook     string `json:"hook,omitempty"`
	Priority int32  `json:"priority,omitempty"`
	// Type is filter, nat or route (base chains only).
	Type string `json:"type,omitempty"`
	// Policy is accept or drop (base chains only).
	Policy string `json:"policy,omitempty"`
	Rules  []Rule `json:"rules,omitempty"`
}

// Ref names a chain (and rule) for messages: "ip filter FORWARD".
func (t Table) Ref(chain string) string { return t.Family + " " + t.Name + " " + chain }

// Outcome kinds of judging a packet against a table's chains.
const (
	OutcomeAccept = "accept"
	OutcomeDrop   = "drop"
	// OutcomeMaybe: some rule's condition could not be decided and the
	// packet may be accepted or dropped.
	OutcomeMaybe = "maybe-drop"
)

// Outcome is what a table does to a packet, with the place that decides it.
type Outcome struct {
	Kind string
	// Where is the chain and rule (or the chain's policy) that drops, or
	// may drop, the packet; for an accept, what accepts it.
	Where string
}

// maxEvalSteps bounds the work of judging one packet against one base chain
// (rules visited over all branches); past it the outcome is maybe-drop.
const maxEvalSteps = 20000

// maxDepth bounds jump nesting (the kernel allows 16).
const maxDepth = 16

// frame is a position in a chain: the next rule to look at.
type frame struct {
	chain Chain
	next  int
}

type evaluator struct {
	t     Table
	base  Chain
	p     Packet
	steps int
}

// JudgeBaseChain decides what base chain c of table t does to packet p,
// following jumps, gotos and returns down to the policy. It is pure. A rule
// whose conditions cannot be decided is followed both ways; when the ways
// end differently the outcome is maybe-drop, naming the dropping place.
func JudgeBaseChain(t Table, c Chain, p Packet) Outcome {
	e := &evaluator{t: t, base: c, p: p}
	return e.run([]frame{{chain: c}})
}

func (e *evaluator) find(name string) (Chain, bool) {
	for _, c := range e.t.Chains {
		if c.Name == name {
			return c, true
		}
	}
	return Chain{}, false
}

// run evaluates from the top frame of stack until a verdict ends the hook.
// It owns stack (callers pass a copy when they fork).
func (e *evaluator) run(stack []frame) Outcome {
	for {
		if len(stack) == 0 {
			if e.base.Policy == "drop" {
				return Outcome{Kind: OutcomeDrop, Where: e.t.Ref(e.base.Name) + " policy drop"}
			}
			return Outcome{Kind: OutcomeAccept, Where: e.t.Ref(e.base.Name) + " policy accept"}
		}
		top := &stack[len(stack)-1]
		if top.next >= len(top.chain.Rules) {
			stack = stack[:len(stack)-1]
			continue
		}
		r := top.chain.Rules[top.next]
		top.next++
		e.steps++
		if e.steps > maxEvalSteps || len(stack) > maxDepth {
			return Outcome{Kind: OutcomeMaybe, Where: e.t.Ref(top.chain.Name) + " (too many rules to follow)"}
		}
		if r.Verdict == VerdictNone {
			continue // conditions without a verdict change nothing here
		}
		where := fmt.Sprintf("%s rule %q (handle %d)", e.t.Ref(top.chain.Name), r.String(), r.Handle)
		switch r.match(e.p) {
		case no:
			continue
		case yes:
			next, o, done := e.apply(stack, r, where)
			if done {
				return o
			}
			stack = next
		case maybe:
			applied := e.fork(stack, r, where)
			skipped := e.run(clone(stack))
			return merge(applied, skipped, where)
		}
	}
}

// fork evaluates the branch where r applies.
func (e *evaluator) fork(stack []frame, r Rule, where string) Outcome {
	next, o, done := e.apply(clone(stack), r, where)
	if done {
		return o
	}
	return e.run(next)
}

// apply applies r's verdict to stack: it returns the outcome when the
// verdict ends evaluation, else the new stack.
func (e *evaluator) apply(stack []frame, r Rule, where string) ([]frame, Outcome, bool) {
	switch r.Verdict {
	case VerdictAccept:
		return nil, Outcome{Kind: OutcomeAccept, Where: where}, true
	case VerdictDrop:
		return nil, Outcome{Kind: OutcomeDrop, Where: where}, true
	case VerdictReturn:
		return stack[:len(stack)-1], Outcome{}, false
	case VerdictJump, VerdictGoto:
		target, ok := e.find(r.Target)
		if !ok {
			return nil, Outcome{Kind: OutcomeMaybe, Where: where + ": target chain not found"}, true
		}
		if r.Verdict == VerdictGoto {
			stack = stack[:len(stack)-1]
		}
		return append(stack, frame{chain: target}), Outcome{}, false
	}
	return stack, Outcome{}, false
}

func clone(s []frame) []frame { return append([]frame(nil), s...) }

// merge combines the two ways of a rule that may or may not apply.
func merge(applied, skipped Outcome, where string) Outcome {
	if applied.Kind == skipped.Kind {
		return applied
	}
	switch {
	case applied.Kind == OutcomeDrop:
		return Outcome{Kind: OutcomeMaybe, Where: applied.Where}
	case skipped.Kind == OutcomeDrop:
		return Outcome{Kind: OutcomeMaybe, Where: skipped.Where + " unless " + where + " accepts it"}
	case applied.Kind == OutcomeMaybe:
		return applied
	case skipped.Kind == OutcomeMaybe:
		return skipped
	}
	return Outcome{Kind: OutcomeMaybe, Where: where}
}
