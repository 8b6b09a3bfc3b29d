package drills

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// countLog is how many lines of the daemon's log hold every one of parts.
func countLog(d *daemonProc, parts ...string) int {
	n := 0
	for _, l := range logLines(d) {
		if containsAll(l, parts...) {
			n++
		}
	}
	return n
}

// TestKeyRotation: the documented key rotation (add the new key
// everywhere, make it primary everywhere, remove the old one; a reload of
// every peer after each step) on a live 3-peer cluster under load: every
// reload restarts the heartbeat helper, and the VIP does not move and no
// request fails.
func TestKeyRotation(t *testing.T) {
	c, owner := newCluster(t, "cly", 90*time.Second)
	keyPath := filepath.Join(c.dir, "gossip.key")
	oldKey, err := readFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	oldKey = strings.TrimSpace(oldKey)
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	newKey := base64.StdEncoding.EncodeToString(b)

	job, err := c.client.StartClient(c.ctx, c.loadOpts(1500, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]int{}
	for name, d := range c.daemons {
		starts[name] = countLog(d, "heartbeat loop started")
	}
	steps := []struct{ what, file string }{
		{"add the new key", oldKey + "\n" + newKey + "\n"},
		{"make it primary", newKey + "\n" + oldKey + "\n"},
		{"remove the old key", newKey + "\n"},
	}
	for i, st := range steps {
		if err := os.WriteFile(keyPath, []byte(st.file), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, h := range c.lbs {
			d := c.daemons[h.Name()]
			c.signal(h.Name(), syscall.SIGHUP)
			deadline := time.Now().Add(10 * time.Second)
			for countLog(d, `"kind":"reload-ok"`) < i+1 {
				if time.Now().After(deadline) {
					c.dumpLog(d)
					t.Fatalf("step %d (%s): %s did not report reload-ok", i+1, st.what, h.Name())
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond) // the peers run mixed for a while
		}
		t.Logf("step %d (%s) reloaded on every peer; owners %v", i+1, st.what, c.owners())
	}
	res, err := job.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	moves := 0
	for name, d := range c.daemons {
		if n := countLog(d, "heartbeat loop started") - starts[name]; n < len(steps) {
			t.Errorf("%s restarted its heartbeat helper %d times over %d key changes: the drill did not exercise the restart", name, n, len(steps))
		}
		rel := countLog(d, `"kind":"vip-released"`)
		acq := countLog(d, `"kind":"vip-acquired"`)
		if name == owner {
			acq-- // its first claim
		}
		moves += rel + acq
		if rel+acq > 0 {
			t.Logf("%s: %d acquisitions, %d releases during the rotation", name, acq, rel)
		}
	}
	t.Logf("key rotation under load: %d VIP moves; client %d attempts, %d ok, %d failed", moves, res.Attempts, res.OK, res.Failed)
	if o := c.owners(); len(o) != 1 || o[0] != owner {
		t.Errorf("owners after the rotation %v; want %s still", o, owner)
	}
	if moves != 0 {
		t.Errorf("%d VIP acquisitions/releases during the key rotation; want 0", moves)
	}
	if res.Failed > 0 || res.Incomplete {
		t.Errorf("%d requests failed (incomplete %v) during the key rotation; want 0: %v", res.Failed, res.Incomplete, res.Errors)
	}
}
