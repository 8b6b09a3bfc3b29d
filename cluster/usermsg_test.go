package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestClusterSendTo: payloads sent with SendTo arrive whole at the named
// member's handler (over the encrypted reliable channel); a node with
// another gossip key is no member and gets nothing; bad calls fail.
func TestClusterSendTo(t *testing.T) {
	names := map[int]string{71: "lb71", 72: "lb72", 73: "lb73"}
	specs := fullMesh(testKey, map[int]string{71: "lb71", 72: "lb72"}, map[int]int{71: 100, 72: 90})
	specs = append(specs, nodeSpec{name: "lb73", idx: 73, prio: 80, key: otherKey, peers: []int{71, 72}})
	nodes := startNodes(t, names, specs...)
	got := map[string]chan []byte{}
	for _, n := range nodes {
		ch := make(chan []byte, 8)
		got[n.name] = ch
		n.c.SetMessageHandler(func(from string, p []byte) {
			if from != "lb71" {
				t.Errorf("message from %q, want lb71", from)
			}
			ch <- p
		})
	}
	waitFor(t, 10*time.Second, "lb71 and lb72 see each other", func() error {
		return sees(nodes[0], "lb72", 90)
	})

	big := bytes.Repeat([]byte("conntrack entry "), 64<<10) // 1 MiB
	tests := []struct {
		name    string
		to      string
		payload []byte
		wantErr error // nil: delivered
		anyErr  bool
	}{
		{"small payload to a peer", "lb72", []byte("hello"), nil, false},
		{"1 MiB payload to a peer", "lb72", big, nil, false},
		{"to a node with another key", "lb73", []byte("secret"), ErrNoMember, true},
		{"to an unknown name", "lb99", []byte("x"), ErrNoMember, true},
		{"to itself", "lb71", []byte("x"), nil, true},
		{"empty payload", "lb72", nil, nil, true},
		{"too large", "lb72", make([]byte, MaxMessageSize+1), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := nodes[0].c.SendTo(tc.to, tc.payload)
			if tc.anyErr {
				if err == nil {
					t.Fatalf("SendTo(%s, %d bytes) succeeded, want an error", tc.to, len(tc.payload))
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("SendTo: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-got[tc.to]:
				if !bytes.Equal(p, tc.payload) {
					t.Errorf("received %d bytes, want the %d sent", len(p), len(tc.payload))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s received nothing in 5 s", tc.to)
			}
		})
	}
	// Nothing reached the node with the other key, nor the sender itself.
	for _, n := range []string{"lb71", "lb73"} {
		select {
		case p := <-got[n]:
			t.Errorf("%s received %q", n, p)
		default:
		}
	}
	// After Shutdown: ErrShutdown.
	_ = nodes[0].c.Shutdown()
	if err := nodes[0].c.SendTo("lb72", []byte("late")); !errors.Is(err, ErrShutdown) {
		t.Errorf("SendTo after Shutdown: %v, want %v", err, ErrShutdown)
	}
}

// TestLegacyUserMessage: an unnamed user message (the previous version's
// form) is taken as the one alive configured peer whose metadata says it
// runs the previous version, and dropped while no peer (or more than one)
// does; SendTo sends the previous form to such a peer.
func TestLegacyUserMessage(t *testing.T) {
	names := map[int]string{74: "lb74", 75: "lb75"}
	nodes := startNodes(t, names, fullMesh(testKey, names, map[int]int{74: 100, 75: 90})...)
	waitFor(t, 10*time.Second, "lb74 sees lb75", func() error { return sees(nodes[0], "lb75", 90) })
	c := nodes[0].c
	type msg struct {
		from    string
		payload string
	}
	got := make(chan msg, 4)
	c.SetMessageHandler(func(from string, p []byte) { got <- msg{from, string(p)} })
	legacy := append([]byte{msgUser}, "entries"...)
	setOlder := func(older bool) {
		c.mu.Lock()
		c.members["lb75"].meta.NamedMessages = !older
		c.mu.Unlock()
	}

	// Every peer runs this version: an unnamed message is dropped.
	ignored := c.ignored.Load()
	c.handleMsg(legacy)
	select {
	case m := <-got:
		t.Fatalf("unnamed message taken with no older peer: %+v", m)
	default:
	}
	if c.ignored.Load() != ignored+1 {
		t.Errorf("dropped unnamed message not counted")
	}

	// lb75 runs the previous version: the message is lb75's.
	setOlder(true)
	c.handleMsg(legacy)
	select {
	case m := <-got:
		if m.from != "lb75" || m.payload != "entries" {
			t.Errorf("unnamed message taken as %+v, want lb75's %q", m, "entries")
		}
	default:
		t.Fatal("unnamed message dropped while lb75 runs the previous version")
	}

	// SendTo speaks the previous form to it: lb75's handler (this
	// version's code) sees it as unnamed, dropped as lb74 is not older.
	recv := make(chan string, 1)
	nodes[1].c.SetMessageHandler(func(from string, _ []byte) { recv <- from })
	ignored75 := nodes[1].c.ignored.Load()
	if err := c.SendTo("lb75", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "lb75 drops the unnamed message", func() error {
		if nodes[1].c.ignored.Load() == ignored75 {
			return errors.New("not yet")
		}
		return nil
	})
	select {
	case from := <-recv:
		t.Errorf("lb75 took an unnamed message as %q's", from)
	default:
	}
	// Back to this version on both: named again.
	setOlder(false)
	if err := c.SendTo("lb75", []byte("y")); err != nil {
		t.Fatal(err)
	}
	select {
	case from := <-recv:
		if from != "lb74" {
			t.Errorf("named message from %q, want lb74", from)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lb75 received nothing")
	}
}

// TestClusterSyncStream: a sync stream dialled with DialStream reaches
// the peer's stream handler (StreamMagic taken off) while gossip goes on
// over the same port; a connection with the magic byte from an address
// that is no configured peer's is closed before any handler sees it; with
// no handler, streams are closed.
func TestClusterSyncStream(t *testing.T) {
	names := map[int]string{81: "lb81", 82: "lb82"}
	nodes := startNodes(t, names, fullMesh(testKey, names, map[int]int{81: 100, 82: 90})...)
	waitFor(t, 10*time.Second, "lb81 and lb82 see each other", func() error {
		if err := sees(nodes[0], "lb82", 90); err != nil {
			return err
		}
		m, ok := nodes[0].c.View().Member("lb82")
		if !ok || !m.Meta.SyncStream {
			return errors.New("lb82 does not advertise SyncStream yet")
		}
		return nil
	})
	got := make(chan string, 4)
	nodes[1].c.SetStreamHandler(func(from netip.AddrPort, conn net.Conn) {
		defer conn.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(conn, b); err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- from.Addr().String() + " " + string(b)
	})
	conn, err := nodes[0].c.DialStream(context.Background(), "lb82")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case g := <-got:
		if want := testAddr(81).Addr().String() + " hello"; g != want {
			t.Errorf("handler got %q, want %q", g, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream never reached lb82's handler")
	}
	// From 127.0.5.99, no configured peer's address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 5, 99)}}
	raw, err := d.Dial("tcp", testAddr(82).String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte{StreamMagic, 'h', 'e', 'l', 'l', 'o'}); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := raw.Read(make([]byte, 1)); err == nil {
		t.Errorf("a stream from a non-peer address was answered with %d bytes", n)
	}
	select {
	case g := <-got:
		t.Errorf("a stream from a non-peer address reached the handler: %q", g)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := nodes[0].c.DialStream(context.Background(), "lb99"); !errors.Is(err, ErrNoMember) {
		t.Errorf("DialStream to an unknown name: %v, want ErrNoMember", err)
	}
	// A peer gossip counts dead (after a partition heals, for seconds,
	// while it is reachable) still gets its stream; one that left does not.
	setState := func(st MemberState) {
		nodes[0].c.mu.Lock()
		nodes[0].c.members["lb82"].state = st
		nodes[0].c.mu.Unlock()
	}
	setState(StateDead)
	if conn, err := nodes[0].c.DialStream(context.Background(), "lb82"); err != nil {
		t.Errorf("DialStream to a peer gossip counts dead: %v, want a stream", err)
	} else {
		conn.Close()
		select {
		case <-got: // the handler's read of the closed stream
		case <-time.After(5 * time.Second):
			t.Error("the stream to a peer gossip counts dead never reached its handler")
		}
	}
	setState(StateLeft)
	if _, err := nodes[0].c.DialStream(context.Background(), "lb82"); !errors.Is(err, ErrNoMember) {
		t.Errorf("DialStream to a peer that left: %v, want ErrNoMember", err)
	}
	setState(StateAlive)
	// Gossip still runs over the same port.
	if err := sees(nodes[1], "lb81", 100); err != nil {
		t.Error(err)
	}
}
