package bench

// HAProxy's view of its backends, read from the log of every LB's
// HAProxy (it runs with -db and prints "Server kube-apiservers/cp3 is
// DOWN, ..." on every change), so that the sections wait until HAProxy's
// health checks have acted instead of sleeping for their worst case.

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// proxyStartMark is written into an HAProxy log before every start of
// the process: the state lines before it belong to an earlier process.
const proxyStartMark = "== bench: haproxy started"

// proxyServerState is the state HAProxy last logged for backend in log
// (the text of one LB's HAProxy log): "UP" or "DOWN", "UP" when nothing
// was logged since the process started (HAProxy starts with its servers
// up).
func proxyServerState(log, backend string) string {
	if i := strings.LastIndex(log, proxyStartMark); i >= 0 {
		log = log[i:]
	}
	state := "UP"
	for _, l := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(l, "Server kube-apiservers/"+backend+" is ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "DOWN"):
			state = "DOWN"
		case strings.HasPrefix(rest, "UP"):
			state = "UP"
		}
	}
	return state
}

// waitProxyState waits until every LB's HAProxy has logged each of
// backends in state, at most timeout (the health checks' worst case, so
// a log that says nothing costs no more than the sleep it replaces). It
// returns how long it waited and whether every HAProxy got there.
func (s *stack) waitProxyState(state string, timeout time.Duration, backends ...string) (time.Duration, bool) {
	t0 := time.Now()
	for {
		all := true
		for _, h := range s.lbs {
			b, err := os.ReadFile(filepath.Join(s.dir, h.Name()+"-haproxy.log"))
			if err != nil {
				all = false
				break
			}
			for _, be := range backends {
				if proxyServerState(string(b), be) != state {
					all = false
				}
			}
		}
		if all || time.Since(t0) >= timeout {
			return time.Since(t0), all
		}
		time.Sleep(50 * time.Millisecond)
	}
}
