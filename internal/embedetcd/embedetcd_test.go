package embedetcd

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/epconsole/epconsole/internal/pki"
)

func TestNewPlanRefuses(t *testing.T) {
	ca, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	h := Host{Name: "m1", ClientURL: "https://127.0.0.1:1", PeerURL: "https://127.0.0.1:2"}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no member", Options{CA: ca, Dir: t.TempDir(), Heartbeat: 10 * time.Millisecond, Election: 100 * time.Millisecond}, "at least one member"},
		{"election too short", Options{CA: ca, Dir: t.TempDir(), Hosts: []Host{h}, Heartbeat: 50 * time.Millisecond, Election: 100 * time.Millisecond}, "at least 5 heartbeats"},
		{"twice", Options{CA: ca, Dir: t.TempDir(), Hosts: []Host{h, h}, Heartbeat: 10 * time.Millisecond, Election: 100 * time.Millisecond}, "given twice"},
	}
	for _, tt := range tests {
		if _, err := NewPlan(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}

// TestPlanAndStart plans a two-member cluster on loopback (TLS between
// the members and for clients), starts both in this process and writes
// and reads a key with the plan's client certificate; a client without a
// certificate is refused.
func TestPlanAndStart(t *testing.T) {
	ca, err := pki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, _, err := ca.WriteFiles(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	var hosts []Host
	for _, name := range []string{"m1", "m2"} {
		hosts = append(hosts, Host{
			Name: name, IPs: []netip.Addr{lo},
			ClientURL: "https://" + freePort(t), PeerURL: "https://" + freePort(t),
		})
	}
	plan, err := NewPlan(Options{
		CA: ca, CAFile: caFile, Dir: dir, Hosts: hosts, Token: "test",
		Heartbeat: 20 * time.Millisecond, Election: 200 * time.Millisecond, ClientName: "test-client",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Members) != 2 || plan.Members[1].InitialCluster != "m1="+hosts[0].PeerURL+",m2="+hosts[1].PeerURL {
		t.Fatalf("plan: %+v", plan.Members)
	}
	if plan.Members[0].DataDir != filepath.Join(dir, "m1.etcd") {
		t.Errorf("data dir %s", plan.Members[0].DataDir)
	}
	type started struct {
		i   int
		err error
	}
	done := make(chan started, len(plan.Members))
	members := make([]interface{ Close() }, len(plan.Members))
	ready := make([]<-chan struct{}, len(plan.Members))
	for i, m := range plan.Members {
		go func() {
			e, err := Start(m, zap.NewNop())
			if err == nil {
				members[i], ready[i] = e, e.Server.ReadyNotify()
			}
			done <- started{i, err}
		}()
	}
	for range plan.Members {
		if s := <-done; s.err != nil {
			t.Fatal(s.err)
		}
	}
	for i := range members {
		t.Cleanup(members[i].Close)
		select {
		case <-ready[i]:
		case <-time.After(30 * time.Second):
			t.Fatalf("member %d did not join", i)
		}
	}

	cert, err := plan.Client.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{hosts[0].ClientURL, hosts[1].ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := cli.Get(ctx, "k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", got, err)
	}

	anon, err := clientv3.New(clientv3.Config{
		Endpoints: []string{hosts[0].ClientURL}, DialTimeout: time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
	})
	if err == nil {
		defer anon.Close()
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		defer acancel()
		if _, err := anon.Get(actx, "k"); err == nil {
			t.Error("a client without a certificate was served")
		}
	}
}

// freePort returns a free loopback address:port.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
