package daemon

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/cluster/heartbeat"
)

// refreshCounter is a beat loop that records refreshes.
type refreshCounter struct {
	fakeBeat
	mu       sync.Mutex
	adverts  []heartbeat.Advert
	lastSent time.Time
}

func (r *refreshCounter) Refresh(a heartbeat.Advert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adverts, r.lastSent = append(r.adverts, a), time.Now()
	return nil
}

func (r *refreshCounter) Close() error { return nil }

func (r *refreshCounter) counts() (refreshes int, last heartbeat.Advert, lastSent time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.adverts) > 0 {
		last = r.adverts[len(r.adverts)-1]
	}
	return len(r.adverts), last, r.lastSent
}

// TestKeeperRenewsWhileTheLoopProgresses: after one refresh by the loop,
// the keeper renews the token with that advert, asks the quiet loop to
// show it runs (Asks), and stops renewing once the loop made none for the
// tolerance; a refresh by the loop starts it again; after Close nothing
// is sent.
func TestKeeperRenewsWhileTheLoopProgresses(t *testing.T) {
	rc := &refreshCounter{}
	k := newKeptBeat(rc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k.tolerance, k.every, k.poke = 300*time.Millisecond, 5*time.Millisecond, 100*time.Millisecond
	go k.run()
	defer k.Close()
	time.Sleep(50 * time.Millisecond)
	if n, _, _ := rc.counts(); n != 0 {
		t.Fatalf("%d refreshes before the loop's first: the keeper must not start the beats", n)
	}
	want := heartbeat.Advert{Owner: "lb1", Epoch: 7, Flags: heartbeat.FlagHolding}
	if err := k.Refresh(want); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the tolerance
	n, last, lastSent := rc.counts()
	t.Logf("%d refreshes, the last %v after the loop's", n, time.Since(lastSent))
	if n < 3 || last != want {
		t.Errorf("%d refreshes, last %+v: want several, with the loop's advert %+v", n, last, want)
	}
	select {
	case <-k.Asks():
	default:
		t.Error("the quiet loop was never asked to show it runs")
	}
	if since := time.Since(lastSent); since < 200*time.Millisecond {
		t.Errorf("still renewing %v ago, past the tolerance with no decision", since)
	}
	if err := k.Refresh(want); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	n2, _, _ := rc.counts()
	if n2 <= n+1 {
		t.Errorf("a decision did not start the keeper again: %d then %d refreshes", n, n2)
	}
	k.Close()
	time.Sleep(20 * time.Millisecond)
	n3, _, _ := rc.counts()
	time.Sleep(50 * time.Millisecond)
	if n4, _, _ := rc.counts(); n4 != n3 {
		t.Errorf("%d refreshes after Close", n4-n3)
	}
}

// TestKeeperAliveIsProgress: the loop's answer to the keeper's question
// (Alive, no decision, nothing sent) counts as progress: the keeper goes
// on renewing the token past the tolerance for a loop that answers.
func TestKeeperAliveIsProgress(t *testing.T) {
	rc := &refreshCounter{}
	k := newKeptBeat(rc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k.tolerance, k.every, k.poke = 100*time.Millisecond, 5*time.Millisecond, 20*time.Millisecond
	go k.run()
	defer k.Close()
	if err := k.Refresh(heartbeat.Advert{Owner: "lb1"}); err != nil {
		t.Fatal(err)
	}
	n0, _, _ := rc.counts()
	for end := time.Now().Add(400 * time.Millisecond); time.Now().Before(end); {
		select {
		case <-k.Asks():
			k.Alive()
		case <-time.After(10 * time.Millisecond):
		}
	}
	n, _, lastSent := rc.counts()
	if n-n0 < 10 || time.Since(lastSent) > 50*time.Millisecond {
		t.Errorf("%d keeper refreshes in 400ms, the last %v ago: a loop answering Asks must keep the token renewed past the %v tolerance",
			n-n0, time.Since(lastSent), k.tolerance)
	}
}
