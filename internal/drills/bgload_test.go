package drills

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// backgroundLoad is a set of busy loops started by startBackgroundLoad
// and a sampler of the run queue while they run.
type backgroundLoad struct {
	cmds    []*exec.Cmd
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []int
	once    sync.Once
}

// startBackgroundLoad starts n busy loops (sh, normal priority, each in
// a process group of its own, bounded by timeout(1) to limit) in the
// test's own namespaces, outside every lab host, and samples the number
// of runnable tasks every 100 ms. stop (also a cleanup) kills them.
func startBackgroundLoad(t *testing.T, n int, limit time.Duration) *backgroundLoad {
	t.Helper()
	b := &backgroundLoad{done: make(chan struct{})}
	t.Cleanup(b.stop)
	secs := fmt.Sprintf("%.0f", limit.Seconds())
	for range n {
		c := exec.Command("timeout", secs, "sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatalf("starting a busy loop: %v", err)
		}
		b.cmds = append(b.cmds, c)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-b.done:
				return
			case <-tk.C:
				if r, ok := runQueue(); ok {
					b.mu.Lock()
					b.samples = append(b.samples, r)
					b.mu.Unlock()
				}
			}
		}
	}()
	return b
}

// stop kills the busy loops and ends the sampling; it may be called
// more than once.
func (b *backgroundLoad) stop() {
	b.once.Do(func() {
		for _, c := range b.cmds {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Wait()
		}
		close(b.done)
		b.wg.Wait()
	})
}

// runnable is the mean number of runnable tasks sampled while the loops
// ran.
func (b *backgroundLoad) runnable() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.samples) == 0 {
		return 0
	}
	sum := 0
	for _, s := range b.samples {
		sum += s
	}
	return float64(sum) / float64(len(b.samples))
}

// runQueue is the number of runnable tasks now (/proc/loadavg's fourth
// field, "running/total").
func runQueue() (int, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, false
	}
	r, _, _ := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(r)
	return n, err == nil
}

// loadAvg is the 1, 5 and 15 minute load averages now.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
