package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The suite's client programs run as this test binary re-executed inside
// the client's namespace, with the role in probeRoleEnv and JSON arguments
// in probeArgsEnv; they print "ready" when set up (streams) and then one
// JSON line with the result.
const (
	probeRoleEnv = "EPCONSOLE_BENCH_PROBE"
	probeArgsEnv = "EPCONSOLE_BENCH_PROBE_ARGS"
)

// connectsArgs is a loop of plain TCP connects started every Every, each
// bounded by Timeout, overlapping, for Duration.
type connectsArgs struct {
	Target   string        `json:"target"`
	Every    time.Duration `json:"every"`
	Timeout  time.Duration `json:"timeout"`
	Duration time.Duration `json:"duration"`
	// SlowEvery, when set, starts a second loop of connects with
	// SlowTimeout (seconds, as a client with default settings waits:
	// the kernel retransmits an unanswered SYN after 1 s), to count the
	// new connections that pay that retransmit.
	SlowEvery   time.Duration `json:"slow_every,omitempty"`
	SlowTimeout time.Duration `json:"slow_timeout,omitempty"`
}

// attempt is one connect: its start and end, in ns since the loop's start.
type attempt struct {
	Start int64 `json:"s"`
	End   int64 `json:"e"`
	OK    bool  `json:"ok"`
	// Local: it failed on the client's host before a SYN left (no
	// ephemeral port, for one): a fault of the client, not of the VIP.
	Local bool `json:"local,omitempty"`
}

// connectsResult is the loop's every attempt and its wall-clock start.
type connectsResult struct {
	StartUnixNano int64     `json:"start_unix_nano"`
	Attempts      []attempt `json:"attempts"`
	// Slow are the attempts of the SlowEvery loop.
	Slow []attempt `json:"slow,omitempty"`
}

// streamsArgs opens N TLS connections to Target that each GET
// /stream?n=Lines&every=Every from the stand-in.
type streamsArgs struct {
	Target  string        `json:"target"`
	CAFile  string        `json:"ca_file"`
	N       int           `json:"n"`
	Lines   int           `json:"lines"`
	Every   time.Duration `json:"every"`
	Timeout time.Duration `json:"timeout"`
	// Stall, when set, ends a stream that gets no byte for that long
	// (a dead connection whose client has nothing to send never learns
	// it is dead; without it the stream waits out Timeout).
	Stall time.Duration `json:"stall,omitempty"`
}

// streamOutcome is one stream: lines received, the longest time between
// two lines, and how it ended.
type streamOutcome struct {
	Lines      int           `json:"lines"`
	LongestGap time.Duration `json:"longest_gap"`
	Complete   bool          `json:"complete"`
	Err        string        `json:"err,omitempty"`
}

// loadArgs runs Clients clients against Target for Duration: with New,
// every request on a new TLS connection; else on kept-alive connections.
type loadArgs struct {
	Target   string        `json:"target"`
	CAFile   string        `json:"ca_file"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration"`
	New      bool          `json:"new"`
	// Bin, when set, makes the result count the requests per Bin.
	Bin time.Duration `json:"bin,omitempty"`
}

// loadBin counts the requests that ended in one bin of loadArgs.Bin.
type loadBin struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// loadResult counts the requests and their latencies' percentiles.
type loadResult struct {
	OK      int           `json:"ok"`
	Failed  int           `json:"failed"`
	Elapsed time.Duration `json:"elapsed"`
	P50     time.Duration `json:"p50"`
	P99     time.Duration `json:"p99"`
	// LBCPUPercentPerNode is filled by the suite: the CPU the LBs'
	// processes used during the load, % of one core per node.
	LBCPUPercentPerNode float64 `json:"lb_cpu_percent_per_node,omitempty"`
	// MachineIdlePercent is the share of the machine's CPU time (all
	// cores) left idle during the load (filled by the suite);
	// ClientCPUPercent what the client's process used (its own count)
	// and StandinsCPUPercent the backends' processes (the suite's), in %
	// of one core.
	MachineIdlePercent float64 `json:"machine_idle_percent,omitempty"`
	ClientCPUPercent   float64 `json:"client_cpu_percent,omitempty"`
	StandinsCPUPercent float64 `json:"standins_cpu_percent,omitempty"`
	// StartUnixNano and Bins are set with loadArgs.Bin.
	StartUnixNano int64     `json:"start_unix_nano,omitempty"`
	Bins          []loadBin `json:"bins,omitempty"`
}

// runProbe runs the role named by the environment, if any, and returns
// true when it did (the process then exits).
func runProbe() bool {
	role := os.Getenv(probeRoleEnv)
	if role == "" {
		return false
	}
	args := []byte(os.Getenv(probeArgsEnv))
	ctx := context.Background()
	var out any
	var err error
	switch role {
	case "connects":
		var a connectsArgs
		if err = json.Unmarshal(args, &a); err == nil {
			out = probeConnects(ctx, a)
		}
	case "streams":
		var a streamsArgs
		if err = json.Unmarshal(args, &a); err == nil {
			out, err = probeStreams(ctx, a)
		}
	case "load":
		var a loadArgs
		if err = json.Unmarshal(args, &a); err == nil {
			out, err = probeLoad(ctx, a)
		}
	default:
		err = fmt.Errorf("unknown probe role %q", role)
	}
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// probeConnects starts a connect every a.Every on schedule, overlapping.
func probeConnects(ctx context.Context, a connectsArgs) connectsResult {
	start := time.Now()
	res := connectsResult{StartUnixNano: start.UnixNano()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	d := net.Dialer{Timeout: a.Timeout, KeepAlive: -1}
	if a.SlowEvery > 0 {
		slow := connectsArgs{Target: a.Target, Every: a.SlowEvery, Timeout: a.SlowTimeout, Duration: a.Duration}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := probeConnects(ctx, slow)
			off := r.StartUnixNano - res.StartUnixNano
			for _, at := range r.Attempts {
				at.Start += off
				at.End += off
				mu.Lock()
				res.Slow = append(res.Slow, at)
				mu.Unlock()
			}
		}()
	}
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * a.Every)
		if at.Sub(start) >= a.Duration {
			break
		}
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Since(start)
			c, err := d.DialContext(ctx, "tcp", a.Target)
			e := time.Since(start)
			if err == nil {
				// Reset, not FIN: a closed connection would hold its port
				// in TIME_WAIT for 60 s, and 1,000 connects a second
				// would use up the client's ephemeral ports in a few runs.
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				c.Close()
			}
			local := err != nil && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENOBUFS))
			mu.Lock()
			res.Attempts = append(res.Attempts, attempt{Start: int64(s), End: int64(e), OK: err == nil, Local: local})
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(res.Attempts, func(x, y attempt) int { return int(x.Start - y.Start) })
	return res
}

func probeTLS(caFile, target string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	host, _, _ := net.SplitHostPort(target)
	return &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

// probeStreams opens the streams, prints "ready" once each has its first
// line (or failed), and reports every stream when all have ended.
func probeStreams(ctx context.Context, a streamsArgs) ([]streamOutcome, error) {
	cfg, err := probeTLS(a.CAFile, a.Target)
	if err != nil {
		return nil, err
	}
	out := make([]streamOutcome, a.N)
	var first, all sync.WaitGroup
	for i := range a.N {
		first.Add(1)
		all.Add(1)
		go func() {
			defer all.Done()
			once := sync.OnceFunc(first.Done)
			defer once()
			out[i] = oneStream(ctx, cfg, a, once)
		}()
	}
	first.Wait()
	fmt.Println("ready")
	all.Wait()
	return out, nil
}

func oneStream(ctx context.Context, cfg *tls.Config, a streamsArgs, firstLine func()) streamOutcome {
	var o streamOutcome
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", a.Target)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	defer c.Close()
	end := time.Now().Add(a.Timeout)
	// extend moves the read deadline to a.Stall from now (never past
	// a.Timeout from the start).
	extend := func() {
		dl := end
		if a.Stall > 0 && time.Now().Add(a.Stall).Before(end) {
			dl = time.Now().Add(a.Stall)
		}
		_ = c.SetDeadline(dl)
	}
	extend()
	fmt.Fprintf(c, "GET /stream?n=%d&every=%s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", a.Lines, a.Every)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	last := time.Now()
	for {
		line, err := br.ReadString('\n')
		if strings.HasSuffix(line, "\n") {
			now := time.Now()
			if o.Lines > 0 {
				o.LongestGap = max(o.LongestGap, now.Sub(last))
			}
			last = now
			o.Lines++
			extend()
			if o.Lines == 1 {
				firstLine()
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && o.Lines >= a.Lines {
				o.Complete = true
			} else {
				o.Err = err.Error()
			}
			return o
		}
	}
}

// probeLoad runs the clients and reports the request counts and latency.
func probeLoad(ctx context.Context, a loadArgs) (loadResult, error) {
	cfg, err := probeTLS(a.CAFile, a.Target)
	if err != nil {
		return loadResult{}, err
	}
	start := time.Now()
	cpu0 := selfCPU()
	end := start.Add(a.Duration)
	var mu sync.Mutex
	var res loadResult
	var bins []loadBin
	if a.Bin > 0 {
		res.StartUnixNano = start.UnixNano()
		bins = make([]loadBin, int(a.Duration/a.Bin)+1)
	}
	bin := func(ok bool) {
		if bins == nil {
			return
		}
		i := min(int(time.Since(start)/a.Bin), len(bins)-1)
		mu.Lock()
		if ok {
			bins[i].OK++
		} else {
			bins[i].Failed++
		}
		mu.Unlock()
	}
	var lat []time.Duration
	var wg sync.WaitGroup
	for range a.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: a.New, MaxIdleConnsPerHost: 1,
				DialContext: (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: -1}).DialContext}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 2 * time.Second}
			var ok, failed int
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				resp, err := cl.Get("https://" + a.Target + "/whoami")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				bin(err == nil)
				if err != nil {
					failed++
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok++
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			res.OK += ok
			res.Failed += failed
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.ClientCPUPercent = float64(selfCPU()-cpu0) / float64(res.Elapsed) * 100
	res.Bins = bins
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[len(lat)*99/100]
	}
	return res, nil
}

// selfCPU is the CPU time this process has used so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
