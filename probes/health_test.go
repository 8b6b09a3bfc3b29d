package probes_test

import (
	"context"
	"crypto/tls"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// Loopback addresses of this package's stand-ins: 127.0.3.1 .. 127.0.3.9.
func backendIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 3, byte(i)}) }

const probeTimeout = 500 * time.Millisecond // the config default

// startCases starts one stand-in per case, cp1..cp9 on 127.0.3.1..9.
func startCases(t *testing.T, f *probetest.Fixture) map[probetest.Case]*probetest.Backend {
	t.Helper()
	out := map[probetest.Case]*probetest.Backend{}
	for i, c := range probetest.AllCases {
		out[c] = f.Backend(t, "cp"+string(rune('1'+i)), backendIP(i+1), c)
	}
	return out
}

func TestProbeCases(t *testing.T) {
	f := probetest.NewFixture(t)
	backends := startCases(t, f)
	clientCert, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		outcome probes.Outcome
		stage   probes.Stage
		status  int
		failing []string
		errHas  string
	}
	pass := want{outcome: probes.OutcomePass, stage: probes.StageDone}
	passHTTP := want{outcome: probes.OutcomePass, stage: probes.StageDone, status: 200}
	refused := want{outcome: probes.OutcomeFail, stage: probes.StageConnect, errHas: "refused"}
	tests := []struct {
		c                probetest.Case
		https, tlsK, tcp want
	}{
		{c: probetest.Healthy, https: passHTTP, tlsK: pass, tcp: pass},
		{c: probetest.Unready, https: want{outcome: probes.OutcomeFail, stage: probes.StageDone, status: 500, failing: []string{"etcd"}, errHas: "500"},
			tlsK: pass, tcp: pass},
		{c: probetest.Slow, https: want{outcome: probes.OutcomeFail, stage: probes.StageHTTP, errHas: "deadline"}, tlsK: pass, tcp: pass},
		{c: probetest.Refused, https: refused, tlsK: refused, tcp: refused},
		// SAN problems are the certificate check's business, not a reason to withdraw the backend.
		{c: probetest.SANMissingVIP, https: passHTTP, tlsK: pass, tcp: pass},
		{c: probetest.SANMissingDNS, https: passHTTP, tlsK: pass, tcp: pass},
		{c: probetest.Expiring, https: passHTTP, tlsK: pass, tcp: pass},
		{c: probetest.OtherCA, https: want{outcome: probes.OutcomeFail, stage: probes.StageTLS, errHas: "cluster CA"},
			tlsK: want{outcome: probes.OutcomeFail, stage: probes.StageTLS, errHas: "cluster CA"}, tcp: pass},
		{c: probetest.Forbidden, https: want{outcome: probes.OutcomeReadinessUnknown, stage: probes.StageDone, status: 403, errHas: "403"},
			tlsK: pass, tcp: pass},
	}
	for _, tc := range tests {
		b := backends[tc.c]
		for _, k := range []struct {
			kind probes.Kind
			want want
		}{{probes.KindHTTPS, tc.https}, {probes.KindTLS, tc.tlsK}, {probes.KindTCP, tc.tcp}} {
			t.Run(string(tc.c)+"/"+string(k.kind), func(t *testing.T) {
				t.Parallel()
				r := probes.Probe(context.Background(), probes.Target{Name: b.Name, Address: b.Addr},
					probes.HealthOptions{Kind: k.kind, Timeout: probeTimeout, RootCAs: f.CA.Pool()})
				w := k.want
				if r.Outcome != w.outcome || r.Stage != w.stage || r.StatusCode != w.status || !slices.Equal(r.FailingChecks, w.failing) {
					t.Errorf("got outcome %s stage %s status %d failing %v; want %s %s %d %v (error %q)",
						r.Outcome, r.Stage, r.StatusCode, r.FailingChecks, w.outcome, w.stage, w.status, w.failing, r.Error)
				}
				if w.errHas != "" && !strings.Contains(r.Error, w.errHas) {
					t.Errorf("error %q does not mention %q", r.Error, w.errHas)
				}
				if w.errHas == "" && r.Error != "" {
					t.Errorf("unexpected error %q", r.Error)
				}
				// A probe is bounded by its timeout (plus the verbose
				// follow-up of a failed /readyz, which has its own).
				if r.Latency > 2*probeTimeout+time.Second {
					t.Errorf("probe took %v with timeout %v", r.Latency, probeTimeout)
				}
				if r.Healthy() != (w.outcome != probes.OutcomeFail) {
					t.Errorf("Healthy() = %v for outcome %s", r.Healthy(), r.Outcome)
				}
			})
		}
	}

	t.Run("forbidden/with-client-cert", func(t *testing.T) {
		b := backends[probetest.Forbidden]
		r := probes.Probe(context.Background(), probes.Target{Name: b.Name, Address: b.Addr},
			probes.HealthOptions{Timeout: probeTimeout, RootCAs: f.CA.Pool(), ClientCert: &clientCert})
		if r.Outcome != probes.OutcomePass || r.StatusCode != 200 || !r.ClientCert {
			t.Errorf("with a client certificate: outcome %s status %d error %q", r.Outcome, r.StatusCode, r.Error)
		}
	})
	t.Run("cert-fingerprint", func(t *testing.T) {
		// The presented certificate's fingerprint: the same through tls and
		// https, another for another backend's certificate, none for tcp or
		// a refused connection.
		fp := func(c probetest.Case, k probes.Kind) string {
			b := backends[c]
			return probes.Probe(context.Background(), probes.Target{Name: b.Name, Address: b.Addr},
				probes.HealthOptions{Kind: k, Timeout: probeTimeout, RootCAs: f.CA.Pool()}).CertSHA256
		}
		healthy, other := fp(probetest.Healthy, probes.KindHTTPS), fp(probetest.SANMissingVIP, probes.KindHTTPS)
		if len(healthy) != 64 || healthy != fp(probetest.Healthy, probes.KindTLS) {
			t.Errorf("fingerprint %q over https, %q over tls; want the same 64 hex digits", healthy, fp(probetest.Healthy, probes.KindTLS))
		}
		if other == "" || other == healthy {
			t.Errorf("another backend's certificate: fingerprint %q (first backend %q)", other, healthy)
		}
		if got := fp(probetest.Healthy, probes.KindTCP); got != "" {
			t.Errorf("tcp probe has a fingerprint %q", got)
		}
		if got := fp(probetest.Refused, probes.KindHTTPS); got != "" {
			t.Errorf("refused probe has a fingerprint %q", got)
		}
	})
	t.Run("unverified-without-ca", func(t *testing.T) {
		b := backends[probetest.OtherCA]
		r := probes.Probe(context.Background(), probes.Target{Name: b.Name, Address: b.Addr},
			probes.HealthOptions{Kind: probes.KindTLS, Timeout: probeTimeout})
		if r.Outcome != probes.OutcomePass {
			t.Errorf("without RootCAs the chain is not checked, got %s %q", r.Outcome, r.Error)
		}
	})
}
