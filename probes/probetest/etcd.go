package probetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/epconsole/epconsole/internal/embedetcd"
	"github.com/epconsole/epconsole/internal/pki"
)

// EtcdCluster is a real etcd cluster embedded in the test process: TLS
// with client certificate auth on the client port, plain peer traffic on
// loopback, fast raft timers (20 ms ticks, 200 ms election).
type EtcdCluster struct {
	// Names are etcd1, etcd2, ...; ClientURLs in the same order.
	Names      []string
	ClientURLs []string
	// CAFile, CertFile, KeyFile: the etcd CA and a client certificate.
	CAFile, CertFile, KeyFile string
	// ClientTLS is the client side TLS config built from those files.
	ClientTLS *tls.Config

	mu      sync.Mutex
	members []*embed.Etcd
	stopped []bool
}

// StartEtcd starts an n-member cluster on loopback address host (e.g.
// 127.0.3.21; every member uses the same address with its own ports),
// planned and run by internal/embedetcd as the lab's are.
func StartEtcd(t testing.TB, host netip.Addr, n int) *EtcdCluster {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	c := &EtcdCluster{stopped: make([]bool, n)}
	if c.CAFile, _, err = ca.WriteFiles(dir, "etcd-ca"); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, host, 2*n)
	o := embedetcd.Options{
		CA: ca, CAFile: c.CAFile, Dir: dir, Token: "probetest",
		Heartbeat: 20 * time.Millisecond, Election: 200 * time.Millisecond,
		ClientName: "epconsole-probe",
	}
	for i := range n {
		name := fmt.Sprintf("etcd%d", i+1)
		c.Names = append(c.Names, name)
		client := "https://" + netip.AddrPortFrom(host, ports[2*i+1]).String()
		c.ClientURLs = append(c.ClientURLs, client)
		o.Hosts = append(o.Hosts, embedetcd.Host{
			Name: name, ClientURL: client, IPs: []netip.Addr{host},
			PeerURL: "http://" + netip.AddrPortFrom(host, ports[2*i]).String(), // plain peer traffic on loopback
		})
	}
	plan, err := embedetcd.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	c.CertFile, c.KeyFile = plan.ClientCertFile, plan.ClientKeyFile
	clientCert, err := plan.Client.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	c.ClientTLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}

	c.members = make([]*embed.Etcd, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range plan.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.members[i], errs[i] = embedetcd.Start(m, nil)
		}()
	}
	wg.Wait()
	t.Cleanup(c.stopAll)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("starting %s: %v", c.Names[i], err)
		}
	}
	for i, m := range c.members {
		select {
		case <-m.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not ready after 30s", c.Names[i])
		}
	}
	return c
}

func freePorts(t testing.TB, host netip.Addr, n int) []uint16 {
	t.Helper()
	var lns []net.Listener
	var ports []uint16
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, netip.MustParseAddrPort(ln.Addr().String()).Port())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// Stop stops member i (0-based); it stays stopped.
func (c *EtcdCluster) Stop(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped[i] {
		return
	}
	c.stopped[i] = true
	c.members[i].Close()
}

func (c *EtcdCluster) stopAll() {
	var wg sync.WaitGroup
	for i := range c.members {
		if c.members[i] == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Stop(i)
		}()
	}
	wg.Wait()
}

// Client returns a client for the given member indexes (all when none).
func (c *EtcdCluster) Client(t testing.TB, idx ...int) *clientv3.Client {
	t.Helper()
	eps := c.ClientURLs
	if len(idx) > 0 {
		eps = nil
		for _, i := range idx {
			eps = append(eps, c.ClientURLs[i])
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: c.ClientTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// MemberID returns member i's ID.
func (c *EtcdCluster) MemberID(i int) uint64 { return uint64(c.members[i].Server.MemberID()) }

// MakeLeader moves leadership to member i, so tests know who leads.
func (c *EtcdCluster) MakeLeader(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		lead := uint64(c.members[i].Server.Leader())
		if lead == c.MemberID(i) {
			return
		}
		for j := range c.members {
			if c.MemberID(j) == lead {
				cli := c.Client(t, j)
				_, err := cli.MoveLeader(ctx, c.MemberID(i))
				cli.Close()
				if err != nil {
					t.Logf("move leader to %s: %v (retrying)", c.Names[i], err)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not become leader", c.Names[i])
}

// Alarm raises (on) or disarms (off) a NOSPACE alarm on member i, through
// the maintenance API as etcd's own tests do.
func (c *EtcdCluster) Alarm(t testing.TB, i int, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := c.Client(t)
	if on {
		_, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
			Action: pb.AlarmRequest_ACTIVATE, MemberID: c.MemberID(i), Alarm: pb.AlarmType_NOSPACE,
		})
		if err != nil {
			t.Fatalf("raising NOSPACE: %v", err)
		}
		return
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: c.MemberID(i), Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatalf("disarming NOSPACE: %v", err)
	}
}
