package cluster

import (
	"bytes"
	"errors"
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
