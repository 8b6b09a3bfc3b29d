package heartbeat

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// mode is how a scenario runs the beat loop.
type mode struct {
	name      string
	inProcess bool
}

var modes = []mode{{"in-process", true}, {"helper", false}}

// addrFor returns a fixed loopback address for node i of scenario s in
// mode m: 127.0.5.0/24 is this package's slice of the loopback network.
func addrFor(m mode, s, i int) netip.AddrPort {
	host := 100 + 4*s + i
	if !m.inProcess {
		host += 60
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 5, byte(host)}), uint16(17900+s))
}

// node is one beater of a test cluster, with the refresher standing in
// for the daemon's decision loop.
type node struct {
	t      *testing.T
	name   string
	cfg    Config
	b      *Beater
	mu     sync.Mutex
	advert Advert
	stop   chan struct{}
	done   chan struct{}
}

// testConfig builds the Config of node self among all (name -> address).
func testConfig(t *testing.T, m mode, self string, all map[string]netip.AddrPort, key []byte) Config {
	var peers []Peer
	for _, n := range sortedNames(all) {
		if n != self {
			peers = append(peers, Peer{Name: n, Addr: all[n]})
		}
	}
	return Config{
		Self: self, Bind: all[self], Peers: peers, Keys: [][]byte{key},
		InProcess: m.inProcess, Logger: testLogger(t),
	}
}

func sortedNames(m map[string]netip.AddrPort) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	return names
}

// startNode starts a beater and a refresher calling Refresh every
// DefaultTokenRefresh.
func startNode(t *testing.T, cfg Config) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start %s: %v", cfg.Self, err)
	}
	n := &node{t: t, name: cfg.Self, cfg: cfg, b: b}
	t.Cleanup(func() { n.stopRefresh(); b.Close() })
	n.startRefresh()
	return n
}

func (n *node) setAdvert(a Advert) {
	n.mu.Lock()
	n.advert = a
	n.mu.Unlock()
	n.b.Refresh(a)
}

func (n *node) startRefresh() {
	n.stop, n.done = make(chan struct{}), make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		tk := time.NewTicker(DefaultTokenRefresh)
		defer tk.Stop()
		for {
			n.mu.Lock()
			a := n.advert
			n.mu.Unlock()
			n.b.Refresh(a)
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}(n.stop, n.done)
}

func (n *node) stopRefresh() {
	if n.stop == nil {
		return
	}
	close(n.stop)
	<-n.done
	n.stop = nil
}

// waitView waits until cond holds for n's view, up to d, and returns the
// view and how long it took.
func (n *node) waitView(d time.Duration, what string, cond func(View) bool) (View, time.Duration) {
	n.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		v := n.b.View()
		if cond(v) {
			return v, time.Since(start)
		}
		select {
		case <-deadline.C:
			n.t.Fatalf("%s: %s not reached within %v; view: %s", n.name, what, d, describe(v))
		case <-tick.C:
		case <-n.b.Changes():
		}
	}
}

func alive(name string) func(View) bool {
	return func(v View) bool { p, _ := v.Peer(name); return p.Alive }
}

func dead(name string) func(View) bool {
	return func(v View) bool { p, _ := v.Peer(name); return !p.Alive }
}

func allAlive(v View) bool {
	for _, p := range v.Peers {
		if !p.Alive {
			return false
		}
	}
	return !v.Stale && v.Majority
}

func describe(v View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stale=%v beating=%v majority=%v rt=%v", v.Stale, v.Beating, v.Majority, v.Realtime.InEffect)
	for _, p := range v.Peers {
		fmt.Fprintf(&b, " [%s alive=%v seen=%v seq=%d flags=%v owner=%q epoch=%d]", p.Name, p.Alive, p.Seen, p.Seq, p.Flags, p.Owner, p.Epoch)
	}
	s := v.Stats
	fmt.Fprintf(&b, " stats{sent=%d recv=%d acc=%d badmac=%d replay=%d oldboot=%d malformed=%d late=%d maxlate=%v}",
		s.Sent, s.Received, s.Accepted, s.BadMAC, s.Replayed, s.OldBoot, s.Malformed, s.LateTicks, s.MaxLateness)
	return b.String()
}

// testLogger logs through t.Log until the test's cleanups ran.
func testLogger(t *testing.T) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
