package heartbeat

import (
	"syscall"
	"testing"
	"time"
)

// TestQueuedBeatIsNotFresh: node a's helper is stopped (SIGSTOP, as a
// paused process) for 300 ms; 50 ms into the pause c's helper stops too,
// for good. The beats c sent before it stopped waited in a's socket; read
// when a wakes, they are 250 ms old by the kernel's receive time, so a's
// first verdict after the pause has c gone (and b, which beat throughout,
// alive). Judged by when they were read, they made c alive.
func TestQueuedBeatIsNotFresh(t *testing.T) {
	_, nodes := threeNodes(t, modes[1], 9)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		n.waitView(5*time.Second, "all peers alive with a majority", allAlive)
	}
	stop := func(n *node) {
		if err := syscall.Kill(n.b.HelperPID(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	cont := func(n *node) {
		if err := syscall.Kill(n.b.HelperPID(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	stop(a)
	time.Sleep(50 * time.Millisecond)
	stop(c)
	t.Cleanup(func() { cont(c) })
	time.Sleep(250 * time.Millisecond)
	resumed := MonoNow()
	cont(a)
	v, took := a.waitView(2*time.Second, "a report made after the pause", func(v View) bool { return v.At >= resumed })
	t.Logf("a's first report after the pause (%v after SIGCONT): %s; longest wait in the socket %v", took, describe(v), v.Stats.MaxRxDelay)
	if p, _ := v.Peer("c"); p.Alive {
		t.Errorf("a counts c alive on beats that waited in its socket while it was paused; want gone")
	}
	if p, _ := v.Peer("b"); !p.Alive {
		t.Errorf("a counts b gone, which beat throughout the pause; want alive")
	}
	if v.Stats.MaxRxDelay < 100*time.Millisecond {
		t.Errorf("longest wait in the socket %v: the beats queued for the pause were not timed by the kernel", v.Stats.MaxRxDelay)
	}
	_ = b
}
