package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
)

// The environment of the benchmark.
const (
	// benchEnv must be set for BenchmarkFailover to run at all.
	benchEnv = "EPCONSOLE_BENCH"
	// runsEnv sets the link-down runs per side (default 10, 1..50).
	runsEnv = "EPCONSOLE_BENCH_RUNS"
	// docEnv names a markdown file whose results section is replaced.
	docEnv = "EPCONSOLE_BENCH_DOC"
	// binEnv names a prebuilt epconsole binary, binDescEnv describes it
	// in the results (e.g. the commit it was built from).
	binEnv     = testenv.BinEnv
	binDescEnv = "EPCONSOLE_BIN_DESC"
)

// BenchmarkFailover pulls the VIP owner's cable N times for each side and
// reports the client's dark time (a TCP connect to VIP:6443 every 5 ms,
// 20 ms timeout). The sides are sub-benchmarks, each with the metrics
// median-ms, worst-ms and best-ms, run one after the other, each alone in
// a lab of its own with the same topology (client, lb1..lb3 with
// priorities 150/100/50, cp1..cp3):
//   - keepalived-haproxy: keepalived (VRRPv3, advert_int 0.01) + HAProxy
//     `mode tcp` (the classic runbook);
//   - keepalived-nft: the same keepalived in front of epconsole's nft DNAT
//     tables (no daemon), so detection is compared on the same datapath;
//   - epconsole: three `epconsole --daemon`.
//
// Run it once:
//
//	EPCONSOLE_BENCH=1 go test -run '^$' -bench Failover -benchtime 1x -timeout 30m ./internal/bench/
func BenchmarkFailover(b *testing.B) {
	if os.Getenv(benchEnv) == "" {
		b.Skipf("set %s=1 to run the failover comparison (root, network namespaces, keepalived and haproxy installed)", benchEnv)
	}
	runs := 10
	if v := os.Getenv(runsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			b.Fatalf("%s=%q: want 1..50", runsEnv, v)
		}
		runs = n
	}
	// Bounded: setup plus about 8 s a run and side.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+time.Duration(runs)*2*30*time.Second)
	defer cancel()
	bin := testenv.Binary(b)
	rep := report{Date: time.Now(), Machine: machine()}
	rep.Setup = append(rep.Setup,
		fmt.Sprintf("each run: a TCP connect from the client to VIP:%d every %s (%s timeout; attempts overlap, so a failing one does not delay the next) for %s; the owner's (lb1) cable is pulled %s in; dark time = the longest time between two successful connects",
			servicePort, connectEvery, connectTimeout, loopDuration, pullAfter),
		"between runs the cable is plugged back and lb1 takes the VIP back (both sides preempt); the sides run one after the other in the order of the table, each alone in a lab of its own with the same topology (client, lb1..lb3, three stand-in apiservers on one bridge)")
	kaDesc := func(s *stack, datapath string) []string {
		return []string{
			"rival: " + version("keepalived", "--version") + " (VRRP only, VRRPv3, advert_int 0.01, unicast peers, priorities 150/100/50, preempt, no track script) with " + datapath,
			"keepalived scheduling (" + s.lab.Prefix() + "): " + strings.Join(s.keepalivedSched(), ", "),
		}
	}
	sides := []struct {
		name, prefix, label string
		start               func(*stack) ([]string, error)
	}{
		{"keepalived-haproxy", "bnk", "keepalived + HAProxy", func(s *stack) ([]string, error) {
			if err := s.startKeepalived(viaHAProxy); err != nil {
				return nil, err
			}
			return kaDesc(s, version("haproxy", "-v")+" (`mode tcp`, roundrobin, as the classic runbook)"), nil
		}},
		{"keepalived-nft", "bnn", "keepalived + nft DNAT", func(s *stack) ([]string, error) {
			if err := s.startKeepalived(viaNftDNAT); err != nil {
				return nil, err
			}
			return kaDesc(s, "epconsole's nft DNAT tables (package dataplane, installed once, no daemon)"), nil
		}},
		{"epconsole", "bne", "epconsole", func(s *stack) ([]string, error) {
			if err := s.startEpconsole(bin); err != nil {
				return nil, err
			}
			return []string{
				"epconsole: " + binDesc() + " (heartbeat at its defaults, preempt on, priorities 150/100/50; nft DNAT datapath)",
				"epconsole heartbeat: " + strings.Join(s.epconsoleHeartbeat(), "; "),
			}, nil
		}},
	}
	for _, sd := range sides {
		var got []runResult
		b.Run(sd.name, func(b *testing.B) {
			var setup []string
			got, setup = runSide(b, ctx, sd.prefix, runs, sd.start)
			rep.Setup = append(rep.Setup, setup...)
		})
		if len(got) != runs {
			b.Fatalf("%s: %d of %d runs completed", sd.name, len(got), runs)
		}
		rep.Sides = append(rep.Sides, side{Name: sd.label, Runs: got})
	}
	md := rep.markdown()
	fmt.Println(md)
	if path := os.Getenv(docEnv); path != "" {
		doc, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		out, err := replaceSection(string(doc), md)
		if err != nil {
			b.Fatalf("%s: %v", path, err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("results written into %s", path)
	}
}

// runSide builds a lab, starts one side with start, makes runs link-down
// runs and reports their median and worst dark time. b is a
// sub-benchmark: the lab and the side's processes are gone when it ends.
func runSide(b *testing.B, ctx context.Context, prefix string, runs int, start func(*stack) ([]string, error)) ([]runResult, []string) {
	if b.N != 1 {
		b.Fatalf("b.N = %d: run the benchmark once (-benchtime 1x)", b.N)
	}
	s := newStack(b, ctx, prefix)
	setup, err := start(s)
	if err != nil {
		b.Fatal(err)
	}
	var out []runResult
	for i := range runs {
		r, err := s.linkDownRun()
		if err != nil {
			b.Fatalf("run %d: %v", i+1, err)
		}
		b.Logf("%s run %d: dark %s, %d of %d connects failed, VIP on %s after %s, recovered %v",
			prefix, i+1, r.Dark.Round(100*time.Microsecond), r.Failures, r.Attempts, r.NewOwner, r.Takeover.Round(100*time.Microsecond), r.Recovered)
		out = append(out, r)
	}
	st := summarize(out)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(st.Median)/1e6, "median-ms")
	b.ReportMetric(float64(st.Worst)/1e6, "worst-ms")
	b.ReportMetric(float64(st.Best)/1e6, "best-ms")
	b.ReportMetric(float64(st.TakeoverMedian)/1e6, "takeover-median-ms")
	return out, setup
}

// binDesc names the epconsole binary: EPCONSOLE_BIN_DESC for a prebuilt
// one, else the checkout it was built from.
func binDesc() string {
	if os.Getenv(binEnv) != "" {
		if d := os.Getenv(binDescEnv); d != "" {
			return d
		}
		return "prebuilt " + os.Getenv(binEnv)
	}
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "built from this checkout (commit unknown)"
	}
	return "built from this checkout, " + strings.TrimSpace(string(out))
}
