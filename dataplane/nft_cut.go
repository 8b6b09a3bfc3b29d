package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

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
