package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/epconsole/epconsole/dataplane"
)

// flakyDatapath fails its first n updates, then programs.
type flakyDatapath struct {
	mu    sync.Mutex
	n     int
	calls int
	last  dataplane.Desired
}

func (f *flakyDatapath) Reconcile(_ context.Context, want dataplane.Desired) (dataplane.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.n {
		return dataplane.Result{}, errFake
	}
	f.last = want
	return dataplane.Result{}, nil
}

func (f *flakyDatapath) state() (calls int, healthy map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.last.Healthy
}

// TestDatapathRetriedAfterReload: an nftables update that fails after a
// reload is tried again, with backoff, until it lands, reported as a
// fault meanwhile; nothing else has to happen for it (no probe change).
func TestDatapathRetriedAfterReload(t *testing.T) {
	const failures = 3
	reload := make(chan struct{})
	r := newRig(t, Options{Reload: reload})
	r.eligible()
	dp := &flakyDatapath{n: failures}
	r.s.dp = dp
	if err := os.WriteFile(r.d.opts.ConfigPath, []byte(testConfigSource+"backend \"cp3\" {\n  address = \"198.18.5.23\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.d.loop(ctx, r.s) }()
	defer func() { cancel(); <-done }()
	reload <- struct{}{}
	sawFault := false
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range r.d.Status().Faults {
			sawFault = sawFault || f.Code == FaultDatapath
		}
		if calls, _ := dp.state(); calls > failures {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls, healthy := dp.state()
	if calls != failures+1 {
		t.Fatalf("%d datapath updates after a reload whose first %d fail; want them retried until one lands (%d)", calls, failures, failures+1)
	}
	if _, ok := healthy["cp3"]; !ok {
		t.Errorf("the update that landed programs %v; want the reloaded backends (cp3 among them)", healthy)
	}
	if !sawFault {
		t.Error("the failing datapath was not reported in the status faults")
	}
	time.Sleep(50 * time.Millisecond) // the loop notes the success
	if f := r.d.Status().Faults; len(f) != 0 {
		t.Errorf("faults %v after the update landed; want none", f)
	}
	if c := r.d.counters.get(); c.ReconcileErrors != failures {
		t.Errorf("ReconcileErrors = %d; want %d", c.ReconcileErrors, failures)
	}
}

// TestProbeRestartFailureReported: a probe monitor that does not start
// with the reloaded config leaves the old one running (the probes are not
// frozen), is reported, and is tried again until it starts.
func TestProbeRestartFailureReported(t *testing.T) {
	r := newRig(t, Options{})
	old := r.mon()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "probe.crt"), filepath.Join(dir, "probe.key")
	r.s.cfg.Health.ClientCertFile, r.s.cfg.Health.ClientKeyFile = cert, key // not there yet
	r.d.restartMonitor(r.s)
	select {
	case <-old.stopped:
		t.Fatal("the old probe monitor was stopped though the new one did not start: the probes are frozen")
	default:
	}
	if r.mon() != old || len(r.monitors) != 1 {
		t.Fatalf("%d monitors; want the old one kept", len(r.monitors))
	}
	fs := r.d.Status().Faults
	if len(fs) != 1 || fs[0].Code != FaultProbes {
		t.Fatalf("faults %v; want %s", fs, FaultProbes)
	}
	// Not due yet: no new try before the backoff.
	r.d.retryFaults(r.s)
	if len(r.monitors) != 1 || r.s.monRetry.failures != 1 {
		t.Fatalf("retried before its backoff: %d failures", r.s.monRetry.failures)
	}
	writeTestCert(t, cert, key)
	r.s.monRetry.at = time.Now()
	r.d.retryFaults(r.s)
	if len(r.monitors) != 2 {
		t.Fatalf("%d monitors after the retry with the files in place; want a new one", len(r.monitors))
	}
	<-old.stopped
	if fs := r.d.Status().Faults; len(fs) != 0 {
		t.Errorf("faults %v after the probes restarted; want none", fs)
	}
}

// writeTestCert writes a self-signed certificate and its key (PEM).
func writeTestCert(t *testing.T, certPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "probe"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
