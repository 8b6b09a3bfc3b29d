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

// TestMain lets the test binary serve as the heartbeat helper process and
// as a stand-in daemon.
func TestMain(m *testing.M) {
	RunHelper()
	if addr := os.Getenv(testDaemonEnv); addr != "" {
		os.Exit(runTestDaemon(addr))
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
