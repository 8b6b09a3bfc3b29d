package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Real memberlist clusters over real sockets on 127.0.5.0/24 (loopback;
// no namespaces needed). Every node has its own address and port in
// 27900+, below the ephemeral range.

var (
	testKey  = []byte("epconsole-cluster-test-key-32by!")
	otherKey = []byte("a-different-gossip-key-of-32byte")
)

// testTimers are aggressive but tolerant of a busy 2-core machine.
func testTimers() Timers {
	return Timers{
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     50 * time.Millisecond,
		SuspicionMult:    3,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: 500 * time.Millisecond,
		TCPTimeout:       500 * time.Millisecond,
		RejoinMin:        50 * time.Millisecond,
		RejoinMax:        400 * time.Millisecond,
		LeaveTimeout:     time.Second,
	}
}

// testAddr is node i's gossip address.
func testAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 5, byte(i)}), uint16(27900+i))
}

// logRecorder is a slog handler that keeps records of level Info and up.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: &sync.Mutex{}, lines: new([]string)} }

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, lines: h.lines, attrs: append(slices.Clone(h.attrs), as...)}
}
func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the first line containing every part.
func (h *logRecorder) find(parts ...string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range *h.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

type testNode struct {
	name   string
	idx    int
	c      *Cluster
	events chan Event
	logs   *logRecorder
}

type nodeSpec struct {
	name  string
	idx   int
	prio  int
	key   []byte
	peers []int // indices of configured peers
}

// startNodes starts the nodes; each is shut down when the test ends.
func startNodes(t *testing.T, names map[int]string, specs ...nodeSpec) []*testNode {
	t.Helper()
	var nodes []*testNode
	for _, s := range specs {
		cfg := Config{
			Name:    s.name,
			Bind:    testAddr(s.idx),
			Keys:    [][]byte{s.key},
			Version: "test",
			Local:   Local{Priority: s.prio, Eligible: true, Digest: "d1"},
			Timers:  testTimers(),
		}
		for _, p := range s.peers {
			cfg.Peers = append(cfg.Peers, Peer{Name: names[p], Addr: testAddr(p)})
		}
		n := &testNode{name: s.name, idx: s.idx, events: make(chan Event, 1024), logs: newLogRecorder()}
		cfg.Events = n.events
		cfg.Logger = slog.New(n.logs)
		c, err := New(context.Background(), cfg)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) {
				t.Skipf("cannot bind %v on loopback: %v", cfg.Bind, err)
			}
			t.Fatalf("New(%s): %v", s.name, err)
		}
		n.c = c
		t.Cleanup(func() { _ = c.Shutdown() })
		nodes = append(nodes, n)
	}
	return nodes
}

// fullMesh makes specs where every node has every other as a peer.
func fullMesh(key []byte, nodes map[int]string, prios map[int]int) []nodeSpec {
	var idx []int
	for i := range nodes {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var specs []nodeSpec
	for _, i := range idx {
		s := nodeSpec{name: nodes[i], idx: i, prio: prios[i], key: key}
		for _, j := range idx {
			if j != i {
				s.peers = append(s.peers, j)
			}
		}
		specs = append(specs, s)
	}
	return specs
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent reads events until one matches or d passes.
func waitEvent(t *testing.T, n *testNode, d time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-n.events:
			if match(e) {
				return e
			}
			t.Logf("%s: event %v", n.name, e)
		case <-timer.C:
			t.Fatalf("%s: no event within %v: %s", n.name, d, what)
		}
	}
}

// sees checks that n's view has member name alive with priority prio and
// exactly the backends want (name=state).
func sees(n *testNode, name string, prio int, want ...string) error {
	v := n.c.View()
	m, ok := v.Member(name)
	if !ok {
		return fmt.Errorf("%s does not list %s", n.name, name)
	}
	if m.State != StateAlive || !m.Fresh {
		return fmt.Errorf("%s sees %s %s", n.name, name, m.State)
	}
	if m.Meta.Name != name || m.Meta.Priority != prio || m.Meta.Version != "test" || m.Meta.BootID == "" {
		return fmt.Errorf("%s sees %s with meta %+v (err %q)", n.name, name, m.Meta, m.MetaErr)
	}
	var got []string
	for _, b := range m.Backends {
		got = append(got, b.Name+"="+b.State)
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s sees %s's backends %v, want %v", n.name, name, got, want)
	}
	return nil
}
