package netlab

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStreamKeepAlive(t *testing.T) {
	t.Parallel()
	lab := New(t, testSpec("nl5", HostSpec{Name: "cl", Role: RoleClient}, HostSpec{Name: "b1", Role: RoleBackend}))
	ctx := testCtx(t, 60*time.Second)
	cl, b1 := lab.Host("cl"), lab.Host("b1")
	s, err := b1.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	withKA, err := cl.StartStream(ctx, StreamOpts{Target: s.Addr4, Lines: 1000, Every: 50 * time.Millisecond, KeepAlive: time.Second, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Control: an idle client without keep-alive does not notice.
	plain, err := cl.StartStream(ctx, StreamOpts{Target: s.Addr6, Lines: 1000, Every: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.SetCable(false); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	r1, err := withKA.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keep-alive stream: %+v, ended %v after the cable pull", r1, time.Since(cut))
	if r1.End != StreamError || !strings.Contains(r1.Err, "timed out") || r1.Ended-r1.LastLine > 8*time.Second {
		t.Errorf("keep-alive stream after a cable pull: %+v, want a keep-alive timeout", r1)
	}
	r2, err := plain.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r2.End != StreamTimeout || r2.Lines == 0 {
		t.Errorf("plain stream after a cable pull: %+v, want it hanging until its own timeout", r2)
	}
}

// TestChildOutlivesStarterThread: a child started from a goroutine whose
// locked OS thread then exits (as every thread that joined a namespace
// does) must keep running: Pdeathsig follows the starting thread.
func TestChildOutlivesStarterThread(t *testing.T) {
	t.Parallel()
	lab := New(t, testSpec("nl6", HostSpec{Name: "cl", Role: RoleClient}, HostSpec{Name: "b1", Role: RoleBackend}))
	ctx := testCtx(t, 60*time.Second)
	cl, b1 := lab.Host("cl"), lab.Host("b1")
	s, err := b1.StartStandin(ctx, StandinOpts{})
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		st  *Stream
		err error
	}
	ch := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		st, err := cl.StartStream(ctx, StreamOpts{Target: s.Addr4, Lines: 20, Every: 50 * time.Millisecond, Timeout: 10 * time.Second})
		ch <- started{st, err}
	}()
	got := <-ch
	if got.err != nil {
		t.Fatal(got.err)
	}
	r, err := got.st.Wait(ctx)
	if err != nil {
		t.Fatalf("stream child died: %v", err)
	}
	if r.End != StreamComplete || r.Lines != 20 {
		t.Errorf("stream started from a retired thread: %+v, want all 20 lines", r)
	}
}
