package drills

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The sync-scale drill's client sockets are held by child processes (the
// test binary re-executed in the client's namespace), heldPerChild flows
// each: a process here may not open more than 20,000 files (the hard
// limit, which root without CAP_SYS_RESOURCE cannot raise), and 50,000
// flows in one process failed with "socket: too many open files" after
// 19,967 of them.
const (
	heldEnv      = "EPCONSOLE_DRILL_HELD" // the VIP:port the child connects to
	heldNEnv     = "EPCONSOLE_DRILL_HELD_N"
	heldEvery    = "EPCONSOLE_DRILL_HELD_EVERY"
	heldSpread   = "EPCONSOLE_DRILL_HELD_SPREAD" // the backends' lines spread over this much time
	heldPerChild = 12500
)

// heldReport is a held-flows child's last line.
type heldReport struct {
	Alive  int      `json:"alive"`
	Slow   int      `json:"slow"` // alive, their request answered after more than 5 s
	Failed []string `json:"failed,omitempty"`
}

// runHeldChild serves as a held-flows child when heldEnv is set; it
// exits. On stdout: "opened <retries as JSON>" once its flows and their
// churn are open, "watching" once every flow waits for its backend's
// line, then a heldReport as JSON. On stdin: "watch", then "check <unix
// nanoseconds>" (the deadline of the backend's line).
func runHeldChild() {
	target, ok := os.LookupEnv(heldEnv)
	if !ok {
		return
	}
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	n, err := strconv.Atoi(os.Getenv(heldNEnv))
	if err != nil {
		fail(fmt.Errorf("%s: %w", heldNEnv, err))
	}
	every, err := time.ParseDuration(os.Getenv(heldEvery))
	if err != nil {
		fail(fmt.Errorf("%s: %w", heldEvery, err))
	}
	ctx := context.Background()
	held, retried, err := openHeldFlows(ctx, target, n)
	if err != nil {
		fail(fmt.Errorf("%w; dials retried or slow: %v", err, retried))
	}
	churnN := n / 10
	if os.Getenv("EPCONSOLE_DRILL_SYNC_CHURN") == "0" {
		churnN = 0 // no churn: the held flows alone
	}
	churn, more, err := openHeldFlows(ctx, target, churnN)
	if err != nil {
		fail(fmt.Errorf("churn: %w", err))
	}
	for _, h := range churn {
		h.conn.Close()
	}
	b, _ := json.Marshal(append(retried, more...))
	fmt.Printf("opened %s\n", b)
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "watch" {
		fail(errors.New("want watch on stdin"))
	}
	spread, err := time.ParseDuration(os.Getenv(heldSpread))
	if err != nil {
		fail(fmt.Errorf("%s: %w", heldSpread, err))
	}
	// Connection i's line comes `every` plus its share of the spread
	// after its watch starts.
	if err := forEachHeld(held, 64, func(i int, h *heldConn) error {
		return h.startWatch(every + time.Duration(i)*spread/time.Duration(max(len(held), 1)))
	}); err != nil {
		fail(fmt.Errorf("starting the watches: %w", err))
	}
	fmt.Println("watching")
	if !in.Scan() || !strings.HasPrefix(in.Text(), "check ") {
		fail(errors.New("want check on stdin"))
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(in.Text(), "check "), 10, 64)
	if err != nil {
		fail(err)
	}
	deadline := time.Unix(0, ns)
	var mu sync.Mutex
	var rep heldReport
	// Mostly waiting: a dead flow takes the whole timeout.
	_ = forEachHeld(held, 4096, func(i int, h *heldConn) error {
		err := h.finishWatch(max(time.Until(deadline), 2*time.Second))
		if err == nil {
			// A byte each way: the backend's line came, now the client's
			// request and its answer. Slow is not dead: an overloaded new
			// owner (or one whose majority blinks) answers late, so the
			// answer may take 30 s; over 5 s counts as slow.
			r0 := time.Now()
			if err = h.roundTrip(30 * time.Second); err != nil {
				err = fmt.Errorf("the request after the line: %w", err)
			} else if time.Since(r0) > 5*time.Second {
				mu.Lock()
				rep.Slow++
				mu.Unlock()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			rep.Alive++
		} else if len(rep.Failed) < 5 {
			rep.Failed = append(rep.Failed, fmt.Sprintf("connection %d from %v: %v", i, h.conn.LocalAddr(), err))
		}
		return nil
	})
	b, _ = json.Marshal(rep)
	fmt.Printf("%s\n", b)
	os.Exit(0)
}

// openHeldFlows dials n TCP connections one after another (a SYN
// unanswered through its retransmissions is dialled again, at most twice,
// and reported) and makes each a TLS connection with a first request
// answered as soon as it is open, 16 at a time: a stand-in closes a
// connection whose TLS handshake has not begun within 10 s (its
// ReadHeaderTimeout), and dialling 12,500 first took longer than that
// (the first requests then met EOF).
func openHeldFlows(ctx context.Context, target string, n int) (held []*heldConn, retried []string, err error) {
	// 20 s: long enough to tell a SYN answered late (a starved machine)
	// from one never answered; slow dials are reported.
	// Keep-alive every 30 s, as client-go's dialer (kubelets, controllers)
	// has it; Go's default of 15 s doubled the probes of 50,000 idle flows.
	d := net.Dialer{Timeout: 20 * time.Second, KeepAlive: 30 * time.Second}
	t0 := time.Now()
	var slow int
	var slowest time.Duration
	defer func() {
		if slow > 0 {
			retried = append(retried, fmt.Sprintf("%d dials took over 1 s, the slowest %v", slow, slowest.Round(time.Millisecond)))
		}
	}()
	out := make([]*heldConn, 0, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 16)
	for range n {
		d0 := time.Now()
		idx := len(out)
		stuck := time.AfterFunc(3*time.Second, func() {
			// A dial unanswered for 3 s: the client's half-open sockets, for
			// the owner's conntrack entry of the same 4-tuple.
			ss, _ := exec.Command("ss", "-tnoH", "state", "syn-sent").CombinedOutput()
			fmt.Fprintf(os.Stderr, "held-flows child: dial %d unanswered after 3 s at %s; syn-sent sockets:\n%s", idx, time.Now().Format("15:04:05.000"), ss)
		})
		c, err := d.DialContext(ctx, "tcp", target)
		stuck.Stop()
		if took := time.Since(d0); took > time.Second {
			slow++
			slowest = max(slowest, took)
		}
		for try := 0; err != nil && isTimeout(err) && try < 2; try++ {
			retried = append(retried, fmt.Sprintf("connection %d at %v: %v", len(out), time.Since(t0).Round(time.Millisecond), err))
			c, err = d.DialContext(ctx, "tcp", target)
		}
		if err != nil {
			mu.Lock()
			first = cmp(first, fmt.Errorf("after %d of %d connections in %v: %w", len(out), n, time.Since(t0).Round(time.Millisecond), err))
			mu.Unlock()
			break
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "kubernetes"}) // a test client: the drill checks flows, not certificates
		h := &heldConn{conn: tc, r: bufio.NewReader(tc)}
		out = append(out, h)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := h.roundTrip(10 * time.Second); err != nil {
				mu.Lock()
				first = cmp(first, fmt.Errorf("a held connection's first request: %w", err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, retried, first
	}
	return out, retried, nil
}

// forEachHeld runs fn on every flow, at most par at a time, and returns
// one of the errors.
func forEachHeld(hs []*heldConn, par int, fn func(int, *heldConn) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, par)
	for i, h := range hs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i, h); err != nil {
				mu.Lock()
				first = cmp(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// heldChild is the parent's end of one held-flows child.
type heldChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	n    int
	name string
}

// startHeld starts children in the client's namespace holding n flows
// through the VIP between them, each waiting `every` (plus its share of
// spread) for its backend's line once told to watch.
func (c *cluster) startHeld(n int, every, spread time.Duration) []*heldChild {
	c.t.Helper()
	self, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	var kids []*heldChild
	for i := 0; n > 0; i++ {
		m := min(n, heldPerChild)
		n -= m
		cmd := c.client.Command(c.ctx, self)
		cmd.Env = append(os.Environ(), heldEnv+"="+netipPort(c).String(), heldNEnv+"="+strconv.Itoa(m), heldEvery+"="+every.String(), heldSpread+"="+spread.String())
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			c.t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			c.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			c.t.Fatalf("starting a held-flows child: %v", err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		k := &heldChild{cmd: cmd, in: in, out: sc, n: m, name: fmt.Sprintf("held%d", i)}
		c.t.Cleanup(func() {
			in.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		kids = append(kids, k)
	}
	return kids
}

// expect reads the child's next line and returns it without want's
// prefix; an "error" line or an early end is an error.
func (k *heldChild) expect(want string) (string, error) {
	if !k.out.Scan() {
		return "", fmt.Errorf("%s (%d flows) ended before %q: %v", k.name, k.n, want, k.out.Err())
	}
	line := k.out.Text()
	if !strings.HasPrefix(line, want) {
		return "", fmt.Errorf("%s (%d flows): want %q, got %s", k.name, k.n, want, line)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, want)), nil
}

// eachHeld sends line (if not empty) to every child at once, reads each
// one's answer starting with want, and returns the answers; on an error
// it logs the hosts' counters and fails the test.
func (c *cluster) eachHeld(kids []*heldChild, line, want string) []string {
	c.t.Helper()
	got := make([]string, len(kids))
	errs := make([]error, len(kids))
	var wg sync.WaitGroup
	for i, k := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if line != "" {
				if _, err := io.WriteString(k.in, line+"\n"); err != nil {
					errs[i] = fmt.Errorf("%s: %w", k.name, err)
					return
				}
			}
			got[i], errs[i] = k.expect(want)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		diagCounters(c.t, c.lab.Hosts())
		c.t.Fatal(err)
	}
	return got
}
