package cluster

import (
	"io"
	"log"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestStreamTransportShutdownUnderDials: connections that keep arriving
// while the transport shuts down never block its Shutdown (memberlist's
// listener hands each accepted connection over on an unbuffered channel
// and its Shutdown waits for the listener: a connection accepted after
// the sorting stopped used to hang both, and with them Cluster.Shutdown).
func TestStreamTransportShutdownUnderDials(t *testing.T) {
	addr := testAddr(91)
	for round := range 20 {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{addr.Addr().String()}, BindPort: int(addr.Port()), Logger: log.New(io.Discard, "", 0)})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		st := newStreamTransport(nt, func(netip.Addr) bool { return true })
		stopDial := make(chan struct{})
		var dialers sync.WaitGroup
		for range 4 {
			dialers.Add(1)
			go func() {
				defer dialers.Done()
				for range 20000 { // bounded; stopped right after the shutdown
					select {
					case <-stopDial:
						return
					default:
					}
					if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
						_, _ = c.Write([]byte{1}) // not StreamMagic: memberlist's (nobody reads it here)
						c.Close()
					}
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- st.Shutdown() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("round %d: Shutdown: %v", round, err)
			}
		case <-time.After(10 * time.Second):
			close(stopDial)
			t.Fatalf("round %d: Shutdown still blocked after 10 s with connections arriving", round)
		}
		close(stopDial)
		dialers.Wait()
	}
}
