package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/status"
)

// Status returns LB peer's status snapshot from its daemon's socket.
func (l *Lab) Status(ctx context.Context, peer string) (status.Snapshot, error) {
	c := status.NewClient(l.Socket(peer))
	defer c.Close()
	return c.Status(ctx)
}

// Owner returns the LB whose daemon says it holds the IPv4 VIP; it fails
// unless exactly one running daemon says so.
func (l *Lab) Owner(ctx context.Context) (string, error) {
	var owners []string
	for _, p := range l.Peers() {
		if !l.daemonRunning(p) {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := l.Status(qctx, p)
		cancel()
		if err != nil {
			continue
		}
		for _, v := range s.VIPs {
			if v.Here && v.Address == l.net.VIP4().String() {
				owners = append(owners, p)
			}
		}
	}
	if len(owners) != 1 {
		return "", fmt.Errorf("lab: VIP owners %v, want exactly one", owners)
	}
	return owners[0], nil
}

// WaitOwner waits until exactly one running daemon other than not holds
// the VIP, and returns it.
func (l *Lab) WaitOwner(ctx context.Context, not string) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var err error
	for {
		var o string
		if o, err = l.Owner(wctx); err == nil && o != not {
			return o, nil
		} else if err == nil {
			err = fmt.Errorf("lab: the owner is still %s", o)
		}
		if !slices.ContainsFunc(l.Peers(), l.daemonRunning) {
			return "", errors.New("lab: no daemon is running")
		}
		select {
		case <-wctx.Done():
			return "", fmt.Errorf("lab: waiting for a VIP owner: %w (last: %v)", wctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Load runs n fresh TLS connections from the client through the VIP
// (IPv4, or IPv6 when v6), at most 4 at a time, starting them within
// timeout. Each may take 2 s (a SYN lost at a VIP move is retransmitted
// after 1 s; a loaded 2-core machine needs more than 500 ms for a
// handshake at times): a failure is a refused, reset or lost connection,
// not a slow one.
func (l *Lab) Load(ctx context.Context, n int, v6 bool, timeout time.Duration) (netlab.ClientResult, error) {
	vip := l.net.VIP4()
	if v6 {
		vip = l.net.VIP6()
	}
	return l.net.Host("client").RunClient(ctx, netlab.ClientOpts{
		Target: netip.AddrPortFrom(vip, ServicePort), Count: n, Concurrency: 4,
		Timeout: timeout, RequestTimeout: 2 * time.Second,
	})
}

// Check runs `epconsole check <what> --json` with LB peer's config inside
// peer's namespace (check probes directly, from where it runs) and
// returns its exit code and output.
func (l *Lab) Check(ctx context.Context, peer string, what ...string) (int, []byte, error) {
	h := l.net.Host(peer)
	if h == nil {
		return 0, nil, fmt.Errorf("lab: no host %s", peer)
	}
	args := append([]string{l.opts.Binary, "check"}, what...)
	cmd := h.Command(ctx, append(args, "--json", "-c", l.ConfigPath(peer))...)
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out, nil
	}
	if err != nil {
		return 0, out, fmt.Errorf("lab: running check on %s: %w", peer, err)
	}
	return 0, out, nil
}
