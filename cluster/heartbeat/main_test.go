package heartbeat

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
)

// testDaemonEnv makes the test binary act as a daemon that starts a real
// helper, prints its PID and waits to be killed (TestHelperDiesWithDaemon).
const testDaemonEnv = "EPCONSOLE_HEARTBEAT_TEST_DAEMON"

// testBusyEnv makes the test binary spin for the given duration (a load
// generator for TestSoakUnderLoad).
const testBusyEnv = "EPCONSOLE_HEARTBEAT_TEST_BUSY"

// TestMain lets the test binary serve as the heartbeat helper process and
// as a stand-in daemon.
func TestMain(m *testing.M) {
	RunHelper()
	if addr := os.Getenv(testUpgradeEnv); addr != "" {
		os.Exit(runUpgradeDaemon(addr))
	}
	if addr := os.Getenv(testDaemonEnv); addr != "" {
		os.Exit(runTestDaemon(addr))
	}
	if d := os.Getenv(testBusyEnv); d != "" {
		os.Exit(runBusy(d))
	}
	os.Exit(m.Run())
}

func runTestDaemon(addr string) int {
	b, err := Start(context.Background(), Config{
		Self: "d", Bind: netip.MustParseAddrPort(addr), Keys: [][]byte{testKey(1)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%d\n", b.HelperPID())
	time.Sleep(time.Minute) // killed by the test long before
	return 0
}

// runBusy spins one thread until d has passed.
func runBusy(d string) int {
	dur, err := time.ParseDuration(d)
	if err != nil || dur > 10*time.Minute {
		return 2
	}
	deadline := time.Now().Add(dur)
	n := 0
	for time.Now().Before(deadline) {
		for range 100000 {
			n++
		}
	}
	return n & 0
}
