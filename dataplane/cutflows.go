package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of CutOptions.
const (
	// DefaultCutBatch is how many conntrack entries a cut deletes before
	// it yields.
	DefaultCutBatch = 256
	// DefaultCutPause is how long a cut yields between batches.
	DefaultCutPause = time.Millisecond
)

// CutOptions bound a cut's work.
type CutOptions struct {
	// Batch is how many entries are deleted between pauses (0:
	// DefaultCutBatch).
	Batch int
	// Pause is the yield between batches (0: DefaultCutPause; negative:
	// none).
	Pause time.Duration
}

func (o CutOptions) withDefaults() CutOptions {
	if o.Batch <= 0 {
		o.Batch = DefaultCutBatch
	}
	if o.Pause == 0 {
		o.Pause = DefaultCutPause
	}
	return o
}

// BackendCut names the established flows of one dead backend through one
// service (VIP:port): the conntrack entries with that original destination
// and that reply source.
type BackendCut struct {
	Service, Backend netip.AddrPort
}

func (c BackendCut) String() string { return c.Backend.String() + " via " + c.Service.String() }

func (c BackendCut) key() flowKey { return flowKey{c.Service, c.Backend} }

// CutReport says what one cut did.
type CutReport struct {
	BackendCut
	// Found is how many entries the filtered dump returned, Cut how many
	// of them this cut deleted (the others ended meanwhile).
	Found, Cut int
	// Batches is how many batches the deletes took.
	Batches int
	// Took is the cut's duration, dump included; Dump the dump's part.
	Took, Dump time.Duration
}

// CutBackend deletes the TCP conntrack entries of connections to service
// that were DNATed to backend, so that their clients see a reset at their
// next packet instead of waiting on a dead backend. It reads only those
// entries (a dump filtered by the kernel, not the whole table) and deletes
// them in batches of o.Batch with a pause of o.Pause between batches, so
// that a large cut neither holds a CPU nor floods the kernel's conntrack
// locks (for IPv6 the kernel matches the ports and the addresses are
// matched here: see filterRequest). It stops when ctx ends and returns what it did so far with the
// context's error. Entries that end meanwhile are not an error. A zero
// service matches any original destination.
func (c *Conntrack) CutBackend(ctx context.Context, service, backend netip.AddrPort, o CutOptions) (rep CutReport, err error) {
	o = o.withDefaults()
	rep.BackendCut = BackendCut{Service: service, Backend: backend}
	t0 := time.Now()
	defer func() { rep.Took = time.Since(t0) }()
	if !backend.IsValid() {
		return rep, errors.New("cutting flows: no backend address")
	}
	conn, err := c.dialNetlink()
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	entries, err := c.dumpMatching(ctx, conn, ctMatch{service: service, backend: backend})
	rep.Dump = time.Since(t0)
	if err != nil {
		return rep, err
	}
	rep.Found = len(entries)
	for i, e := range entries {
		if i%o.Batch == 0 {
			if i > 0 && o.Pause > 0 {
				if err := sleepCtx(ctx, o.Pause); err != nil {
					return rep, err
				}
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			rep.Batches++
		}
		req, err := deleteRequest(e)
		if err != nil {
			return rep, err
		}
		if _, err := conn.Execute(req); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // ended meanwhile
			}
			return rep, fmt.Errorf("deleting conntrack entry %v -> %v: %w", e.origSrc, e.origDst, err)
		}
		rep.Cut++
	}
	return rep, nil
}

// SurveyServices returns the backends that hold TCP entries through one of
// services and were DNATed (the reply comes from another address than the
// original destination), read with one kernel-filtered dump per service.
func (c *Conntrack) SurveyServices(ctx context.Context, services []netip.AddrPort) ([]BackendCut, error) {
	conn, err := c.dialNetlink()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	seen := map[BackendCut]bool{}
	var out []BackendCut
	for _, svc := range services {
		entries, err := c.dumpMatching(ctx, conn, ctMatch{service: svc})
		if err != nil {
			return out, err
		}
		for _, e := range entries {
			k := BackendCut{Service: svc, Backend: e.replySrc}
			if e.replySrc != e.origDst && !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
