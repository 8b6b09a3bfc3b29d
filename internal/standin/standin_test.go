package standin

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/pki"
)

func start(t *testing.T, ips ...string) (*Server, string, *pki.CA, string) {
	t.Helper()
	ca, err := pki.NewCA("standin-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, ip := range ips {
		addrs = append(addrs, netip.MustParseAddr(ip))
	}
	leaf, err := ca.Issue(pki.LeafOptions{CommonName: "kube-apiserver", IPs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := leaf.WriteFiles(dir, "apiserver")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Name: "cp1", CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), ca, dir
}

func get(t *testing.T, ca *pki.CA, addr, path string, timeout time.Duration) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Standin-Backend") != "cp1" {
		t.Errorf("%s: X-Standin-Backend = %q, want cp1", path, resp.Header.Get("X-Standin-Backend"))
	}
	return resp.StatusCode, string(b), nil
}

func TestBehaviours(t *testing.T) {
	s, addr, ca, _ := start(t, "127.0.0.1")
	cases := []struct {
		desc     string
		b        Behavior
		path     string
		wantCode int
		wantBody string
	}{
		{"healthy readyz", Behavior{}, "/readyz", 200, "ok"},
		{"healthy verbose", Behavior{}, "/readyz?verbose", 200, "[+]etcd ok\n"},
		{"unready", Behavior{Unready: true}, "/readyz", 500, "[-]etcd failed: reason withheld\nreadyz check failed\n"},
		{"unready verbose names the check", Behavior{Unready: true, FailingCheck: "informer-sync"}, "/readyz?verbose", 500, "[-]informer-sync failed"},
		{"unready leaves livez", Behavior{Unready: true}, "/livez", 200, "ok"},
		{"forbidden anonymous", Behavior{AnonymousStatus: 403}, "/readyz", 403, `"reason":"Forbidden"`},
		{"version", Behavior{}, "/version", 200, `"gitVersion":"v1.31.0"`},
		{"whoami", Behavior{}, "/whoami", 200, "cp1\n"},
	}
	for _, c := range cases {
		s.SetBehavior(c.b)
		code, body, err := get(t, ca, addr, c.path, 2*time.Second)
		if err != nil {
			t.Errorf("%s: %v", c.desc, err)
			continue
		}
		if code != c.wantCode || !strings.Contains(body, c.wantBody) {
			t.Errorf("%s: got %d %q, want %d containing %q", c.desc, code, body, c.wantCode, c.wantBody)
		}
	}
	s.SetBehavior(Behavior{Delay: 300 * time.Millisecond})
	if _, _, err := get(t, ca, addr, "/readyz", 100*time.Millisecond); err == nil {
		t.Errorf("slow stand-in answered within 100ms")
	}
}

func TestReloadAndControl(t *testing.T) {
	s, addr, ca, dir := start(t, "127.0.0.1")
	// Reissue without the 127.0.0.1 SAN: verification by IP must now fail.
	leaf, err := ca.Issue(pki.LeafOptions{CommonName: "kube-apiserver", DNSNames: []string{"other.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := leaf.WriteFiles(dir, "apiserver"); err != nil {
		t.Fatal(err)
	}
	ctl := httptest.NewServer(s.ControlHandler())
	defer ctl.Close()
	resp, err := http.Post(ctl.URL+"/reload", "", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reload: %v %v", resp, err)
	}
	if _, _, err := get(t, ca, addr, "/readyz", 2*time.Second); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("after reissue without the IP SAN, err = %v; want a SAN mismatch", err)
	}
	req, _ := http.NewRequest(http.MethodPut, ctl.URL+"/behavior", bytes.NewBufferString(`{"unready":true}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("put behavior: %v %v", resp, err)
	}
	if !s.Behavior().Unready {
		t.Errorf("behaviour not applied")
	}
}
