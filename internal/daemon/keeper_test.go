package daemon

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// refreshCounter is a beat loop that records refreshes and wake-ups.
type refreshCounter struct {
	fakeBeat
	mu       sync.Mutex
	adverts  []heartbeat.Advert
	wakes    int
	lastSent time.Time
}

func (r *refreshCounter) Refresh(a heartbeat.Advert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adverts, r.lastSent = append(r.adverts, a), time.Now()
	return nil
}

func (r *refreshCounter) Wake() {
	r.mu.Lock()
	r.wakes++
	r.mu.Unlock()
}

func (r *refreshCounter) Close() error { return nil }

func (r *refreshCounter) counts() (refreshes, wakes int, last heartbeat.Advert, lastSent time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.adverts) > 0 {
		last = r.adverts[len(r.adverts)-1]
	}
	return len(r.adverts), r.wakes, last, r.lastSent
}

// TestKeeperRenewsWhileTheLoopProgresses: after one refresh by the loop,
// the keeper renews the token with that advert, asks the quiet loop for a
// decision, and stops renewing once the loop made none for the
// tolerance; a refresh by the loop starts it again; after Close nothing
// is sent.
func TestKeeperRenewsWhileTheLoopProgresses(t *testing.T) {
	rc := &refreshCounter{}
	k := newKeptBeat(rc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k.tolerance, k.every, k.poke = 300*time.Millisecond, 5*time.Millisecond, 100*time.Millisecond
	go k.run()
	defer k.Close()
	time.Sleep(50 * time.Millisecond)
	if n, _, _, _ := rc.counts(); n != 0 {
		t.Fatalf("%d refreshes before the loop's first: the keeper must not start the beats", n)
	}
	want := heartbeat.Advert{Owner: "lb1", Epoch: 7, Flags: heartbeat.FlagHolding}
	if err := k.Refresh(want); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the tolerance
	n, wakes, last, lastSent := rc.counts()
	t.Logf("%d refreshes, %d wake-ups, the last %v after the loop's", n, wakes, time.Since(lastSent))
	if n < 3 || last != want {
		t.Errorf("%d refreshes, last %+v: want several, with the loop's advert %+v", n, last, want)
	}
	if wakes == 0 {
		t.Error("the quiet loop was never asked for a decision")
	}
	if since := time.Since(lastSent); since < 200*time.Millisecond {
		t.Errorf("still renewing %v ago, past the tolerance with no decision", since)
	}
	if err := k.Refresh(want); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	n2, _, _, _ := rc.counts()
	if n2 <= n+1 {
		t.Errorf("a decision did not start the keeper again: %d then %d refreshes", n, n2)
	}
	k.Close()
	time.Sleep(20 * time.Millisecond)
	n3, _, _, _ := rc.counts()
	time.Sleep(50 * time.Millisecond)
	if n4, _, _, _ := rc.counts(); n4 != n3 {
		t.Errorf("%d refreshes after Close", n4-n3)
	}
}
