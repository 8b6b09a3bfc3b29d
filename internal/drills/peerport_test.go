package drills

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestVIPFlowFromPeerPort: a client whose source port is the gossip port
// (7946) or the heartbeat port (7947) gets its connection through the
// VIP answered. The owner SNATs forwarded flows to the VIP keeping the
// client's port, so the backend's answers arrive at VIP:7946; the peer
// filter in the raw hook (before NAT) took them for a non-peer's packets
// to the gossip port and dropped them, and the connect hung (found at
// ~50,000 flows from one client with ip_local_port_range 1024-65000).
// Control: the same client's connect to the owner's own gossip port is
// still dropped, and the filter's drop counter rises.
func TestVIPFlowFromPeerPort(t *testing.T) {
	c, owner := newCluster(t, "clf", 60*time.Second)
	client := c.client
	for _, port := range []uint16{7946, 7947} {
		src := netip.AddrPortFrom(client.IPv4(), port)
		err := inHost(t, client, "a connection through the VIP", func() (error, error) {
			return vipRoundTrip(c.ctx, src, netipPort(c)), nil
		})
		if err != nil {
			t.Errorf("from client port %d through the VIP %v: %v", port, netipPort(c), err)
		} else {
			t.Logf("from client port %d through the VIP %v: answered", port, netipPort(c))
		}
	}
	lb := c.lab.Host(owner)
	before := nftDrops(t, c, lb)
	gossip := netip.AddrPortFrom(lb.IPv4(), 7946)
	err := inHost(t, client, "a connection to the owner's gossip port", func() (error, error) {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(c.ctx, "tcp", gossip.String())
		if err == nil {
			conn.Close()
		}
		return err, nil
	})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("control: a connect from the client (not a peer) to %s's gossip port %v: %v, want no answer (dropped by the peer filter)", owner, gossip, err)
	}
	if after := nftDrops(t, c, lb); after <= before {
		t.Errorf("control: the peer filter's drop counters on %s stayed at %d", owner, after)
	}
}

// vipRoundTrip opens a TLS connection from src to vip and reads the
// answer to one request.
func vipRoundTrip(ctx context.Context, src, vip netip.AddrPort) error {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(src)}
	raw, err := d.DialContext(ctx, "tcp", vip.String())
	if err != nil {
		return err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "kubernetes"}) // a test client: the drill checks the flow, not the certificate
	h := &heldConn{conn: conn, r: bufio.NewReader(conn)}
	if err := h.roundTrip(5 * time.Second); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	return nil
}
