package probes_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/epconsole/epconsole/probes"
	"github.com/epconsole/epconsole/probes/probetest"
)

// overloadEnv enables TestOverloadNotDown and sets how long the cores stay
// saturated per run ("5s"); overloadLoopsEnv how many busy loops (default
// four per core: a load average near 10 on two cores). Off by default:
// saturating the cores under a parallel `go test ./...` would disturb
// other packages' timing tests.
const (
	overloadEnv      = "EPCONSOLE_PROBES_OVERLOAD"
	overloadLoopsEnv = "EPCONSOLE_PROBES_OVERLOAD_LOOPS"
)

// TestOverloadNotDown: every core saturated by bounded busy loops (normal
// priority, as other work on a loaded LB host), healthy stand-ins probed
// with the default health settings are never marked down: the timeouts the
// load causes are this process running late, and are discounted. The
// control runs the same load with discounting off.
func TestOverloadNotDown(t *testing.T) {
	v := os.Getenv(overloadEnv)
	if v == "" {
		t.Skipf("set %s=5s to saturate the cores; off by default", overloadEnv)
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 2*time.Minute {
		t.Fatalf("%s=%q: want a duration up to 2m", overloadEnv, v)
	}
	loops := 4 * runtime.NumCPU()
	if s := os.Getenv(overloadLoopsEnv); s != "" {
		if loops, err = strconv.Atoi(s); err != nil || loops < 1 || loops > 64 {
			t.Fatalf("%s=%q: want 1 to 64", overloadLoopsEnv, s)
		}
	}
	f := probetest.NewFixture(t)
	// Six healthy stand-ins, cp6..cp11 on 127.0.3.6..11.
	var targets []probes.Target
	for i := 6; i <= 11; i++ {
		b := f.Backend(t, "cp"+strconv.Itoa(i), backendIP(i), probetest.Healthy)
		targets = append(targets, probes.Target{Name: b.Name, Address: b.Addr})
	}

	type figures struct {
		downs, falls, timeouts int
		discounted             uint64
		maxLate                time.Duration
	}
	run := func(fraction float64) figures {
		var fg figures
		updates := make(chan probes.Update, 4096)
		m := probes.NewMonitor(probes.MonitorOptions{
			Targets: targets,
			// config.hcl's health defaults.
			Health:   probes.HealthOptions{Kind: probes.KindHTTPS, Timeout: 500 * time.Millisecond, RootCAs: f.CA.Pool()},
			Interval: time.Second, FastInterval: 200 * time.Millisecond, Rise: 2, Fall: 2,
			LateFraction: fraction,
			OnUpdate: func(u probes.Update) {
				select {
				case updates <- u:
				default:
				}
			},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		defer func() { cancel(); <-done }()
		for _, tg := range targets {
			waitState(t, updates, tg.Name, probes.StateUp, 5*time.Second)
		}

		lctx, lcancel := context.WithTimeout(ctx, d)
		defer lcancel()
		for range loops {
			cmd := exec.CommandContext(lctx, "sh", "-c", "while :; do :; done")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { _ = cmd.Wait() }()
		}
		for end := time.After(d + time.Second); ; {
			select {
			case u := <-updates:
				if u.Result.Cause == probes.CauseTimeout {
					fg.timeouts++
				}
				if u.Changed() && u.Tracker.State == probes.StateDown {
					fg.downs++
				}
				if u.Changed() && u.Tracker.State == probes.StateFalling {
					fg.falls++
				}
				continue
			case <-end:
			}
			break
		}
		for _, s := range m.Snapshot() {
			fg.discounted += s.Discounted
			fg.maxLate = max(fg.maxLate, s.MaxLateness)
		}
		return fg
	}
	on := run(0) // the default: discount late timeouts
	off := run(-1)
	t.Logf("%d backends, %d busy loops for %v per run, interval 1s, timeout 500ms, fall 2", len(targets), loops, d)
	t.Logf("discounting on:  %d down, %d falling, %d counted timeouts, %d discounted, max lateness %v", on.downs, on.falls, on.timeouts, on.discounted, on.maxLate)
	t.Logf("discounting off: %d down, %d falling, %d counted timeouts, max lateness %v", off.downs, off.falls, off.timeouts, off.maxLate)
	if on.downs > 0 {
		t.Errorf("healthy backends were marked down %d times while this host was overloaded", on.downs)
	}
	if off.downs == 0 {
		t.Logf("control did not reproduce here: without discounting the backend was not marked down either")
	}
}
