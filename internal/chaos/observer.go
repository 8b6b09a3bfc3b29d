package chaos

// The observer: nothing of epconsole, only what a client and the wire see.
// Three loops: a sniffer on the lab's switch (every frame that claims the
// VIP, with its MAC and the switch port it came in on), a prober on the
// observer host (a broadcast who-has for the VIP every ProbeEvery, so
// every host that would answer for the VIP does), and a connect loop on
// the client host (a plain TCP connect to VIP:6443 every ConnectEvery).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/epconsole/epconsole/internal/lab"
	"github.com/epconsole/epconsole/internal/netlab"
	"github.com/epconsole/epconsole/internal/netnsx"
)

// Observer defaults.
const (
	// ProbeEvery is the pace of the observer's ARP who-has for the VIP.
	ProbeEvery = 5 * time.Millisecond
	// ConnectEvery is the pace of the client's connects through the VIP,
	// ConnectTimeout the bound of each.
	ConnectEvery   = 5 * time.Millisecond
	ConnectTimeout = 300 * time.Millisecond
	// maxRecords bounds what the observer keeps (a 10-minute run at the
	// default paces stays well below it).
	maxRecords = 2_000_000
)

// ClaimAt is a claim for the VIP and when the sniffer saw it.
type ClaimAt struct {
	At time.Duration
	Claim
}

// Attempt is one connect through the VIP: when it started, how long it
// took, and whether it connected.
type Attempt struct {
	At  time.Duration
	Dur time.Duration
	OK  bool
	// Refused: the connect was refused (a reset: nobody to forward it to).
	Refused bool
	// Err says why a connect failed (the first failures of a run only).
	Err string
}

// Observer records claims for the VIP and the client's connects. Its
// methods are safe for concurrent use.
type Observer struct {
	start time.Time
	vip4  netip.Addr
	vip6  netip.Addr

	mu       sync.Mutex
	claims   []ClaimAt
	attempts []Attempt
	errs     []error

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartObserver starts the observer's loops on l (built with
// lab.Options.Observer); times count from start. Stop ends them.
func StartObserver(ctx context.Context, l *lab.Lab, start time.Time) (*Observer, error) {
	nl := l.Net()
	obs, client := nl.Host(lab.ObserverHost), nl.Host("client")
	if obs == nil || client == nil {
		return nil, errors.New("chaos: the lab has no observer or client host (build it with lab.Options.Observer)")
	}
	o := &Observer{start: start, vip4: nl.VIP4(), vip6: nl.VIP6()}
	ports, err := switchPorts(nl)
	if err != nil {
		return nil, err
	}
	var sniff []int
	err = netnsx.DoPath("/run/netns/"+nl.SwitchNamespace(), func() error {
		fd, err := openSniffer()
		if err != nil {
			return err
		}
		sniff = append(sniff, fd)
		return nil
	})
	if err != nil {
		closeAll(sniff)
		return nil, fmt.Errorf("chaos: sniffer in %s: %w", nl.SwitchNamespace(), err)
	}
	var sendFD, sendIdx int
	var mac net.HardwareAddr
	err = netnsx.DoPath(obs.NsPath(), func() error {
		var err error
		sendFD, sendIdx, mac, err = openSender(netlab.HostLink)
		return err
	})
	if err != nil {
		closeAll(sniff)
		return nil, fmt.Errorf("chaos: prober in %s: %w", obs.Namespace(), err)
	}
	rctx, cancel := context.WithCancel(ctx)
	o.cancel = cancel
	for _, fd := range sniff {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			defer unix.Close(fd)
			o.sniff(rctx, fd, ports)
		}()
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer unix.Close(sendFD)
		o.probe(rctx, sendFD, sendIdx, arpRequest(mac, obs.IPv4(), o.vip4))
	}()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		err := netnsx.DoPath(client.NsPath(), func() error {
			o.connectLoop(rctx, netip.AddrPortFrom(o.vip4, lab.ServicePort))
			return nil
		})
		if err != nil {
			o.fail(fmt.Errorf("connect loop in %s: %w", client.Namespace(), err))
		}
	}()
	return o, nil
}

// Stop ends the loops and waits for them.
func (o *Observer) Stop() {
	o.cancel()
	o.wg.Wait()
}

// Now is the time since the observer's start.
func (o *Observer) Now() time.Duration { return time.Since(o.start) }

// Claims returns the claims seen in [from, to).
func (o *Observer) Claims(from, to time.Duration) []ClaimAt {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []ClaimAt
	for _, c := range o.claims {
		if c.At >= from && c.At < to {
			out = append(out, c)
		}
	}
	return out
}

// Attempts returns the connects started in [from, to).
func (o *Observer) Attempts(from, to time.Duration) []Attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Attempt
	for _, a := range o.attempts {
		if a.At >= from && a.At < to {
			out = append(out, a)
		}
	}
	return out
}

// Err returns what went wrong in the loops (nil: nothing).
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return errors.Join(o.errs...)
}

func (o *Observer) fail(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

// sniff reads frames until ctx ends, recording claims for the VIP that
// enter the bridge from a host (not copies leaving it).
func (o *Observer) sniff(ctx context.Context, fd int, ports map[int]string) {
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		at := o.Now()
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			o.fail(fmt.Errorf("sniffer: %w", err))
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		port, ok := ports[ll.Ifindex]
		if !ok {
			continue // the bridge itself
		}
		c, ok := parseClaim(buf[:n], o.vip4, o.vip6)
		if !ok {
			continue
		}
		c.Port = port
		o.mu.Lock()
		if len(o.claims) < maxRecords {
			o.claims = append(o.claims, ClaimAt{At: at, Claim: c})
		}
		o.mu.Unlock()
	}
}

// probe sends frame (a who-has for the VIP) every ProbeEvery until ctx ends.
func (o *Observer) probe(ctx context.Context, fd, ifindex int, frame []byte) {
	to := &unix.SockaddrLinklayer{Protocol: htons(ethARP), Ifindex: ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	t := time.NewTicker(ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := unix.Sendto(fd, frame, 0, to); err != nil && !errors.Is(err, unix.ENETDOWN) {
			o.fail(fmt.Errorf("prober: %w", err))
			return
		}
	}
}

// connectLoop connects to target every ConnectEvery (an attempt that
// takes longer delays the next) until ctx ends. It runs on a thread inside
// the client's namespace.
func (o *Observer) connectLoop(ctx context.Context, target netip.AddrPort) {
	d := net.Dialer{Timeout: ConnectTimeout, KeepAlive: -1}
	next := time.Now()
	for ctx.Err() == nil {
		if w := time.Until(next); w > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(w):
			}
		}
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp", target.String())
		dur := time.Since(t0)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
		}
		a := Attempt{At: t0.Sub(o.start), Dur: dur, OK: err == nil, Refused: errors.Is(err, unix.ECONNREFUSED)}
		o.mu.Lock()
		if err != nil && (len(o.attempts) == 0 || o.attempts[len(o.attempts)-1].OK) {
			a.Err = err.Error()
		}
		if len(o.attempts) < maxRecords {
			o.attempts = append(o.attempts, a)
		}
		o.mu.Unlock()
		next = next.Add(ConnectEvery)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
}

// switchPorts maps the switch namespace's interface indexes to the host
// each port leads to ("v<host>" → host).
func switchPorts(nl *netlab.Lab) (map[int]string, error) {
	out := map[int]string{}
	err := netnsx.DoPath("/run/netns/"+nl.SwitchNamespace(), func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			if host, ok := strings.CutPrefix(i.Name, "v"); ok && nl.Host(host) != nil {
				out[i.Index] = host
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chaos: listing the switch ports: %w", err)
	}
	return out, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
