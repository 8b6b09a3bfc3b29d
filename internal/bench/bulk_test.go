package bench

// Bulk throughput through the VIP with iperf3. iperf3 opens a control
// and a data connection that must reach the same server, so the section
// leaves one backend: the stand-ins on cp2 and cp3 are stopped (every
// system's health checks take them out; the nft rival, which has none,
// gets its tables rewritten with cp1 alone healthy), and on cp1 an nft
// redirect hands the datapath's connections to port 6443 to an iperf3
// server, while the LBs' health probes (epconsole's TLS probes come from
// the LBs' own addresses) still reach the stand-in. HAProxy's checks are
// plain TCP connects, which iperf3 accepts as well as the stand-in does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/epconsole/epconsole/internal/netlab"
)

// iperfPort is where the iperf3 server listens on cp1.
const iperfPort = 5201

// bulkProxyWait bounds the bulk section's wait, where HAProxy runs, for
// its health checks to take the stopped backends out (it goes on as soon
// as every LB's HAProxy has logged them DOWN).
const bulkProxyWait = 10 * time.Second

// bulkResult is one system's bulk transfer (client to backend).
type bulkResult struct {
	Seconds float64 `json:"seconds"`
	// Gbps is what the receiver got, in 10^9 bits per second.
	Gbps        float64 `json:"gbps"`
	Retransmits int     `json:"retransmits"`
	Tries       int     `json:"tries"`
	Err         string  `json:"err,omitempty"`
}

// iperfReport is the part of `iperf3 -J` the suite reads.
type iperfReport struct {
	End struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf reads `iperf3 -J`'s report.
func parseIperf(out []byte) (bulkResult, error) {
	var rep iperfReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return bulkResult{}, fmt.Errorf("iperf3 -J output: %w", err)
	}
	if rep.Error != "" {
		return bulkResult{}, errors.New("iperf3: " + rep.Error)
	}
	if rep.End.SumReceived.BitsPerSecond <= 0 {
		return bulkResult{}, errors.New("iperf3: nothing received")
	}
	return bulkResult{Seconds: rep.End.SumReceived.Seconds, Gbps: rep.End.SumReceived.BitsPerSecond / 1e9, Retransmits: rep.End.SumSent.Retransmits}, nil
}

// bulk measures the throughput through target for d (see the file's
// comment), trying again until the systems' health checks have taken
// cp2 and cp3 out (HAProxy's `fall 3` at `inter 3s`: about 9 s).
func (s *stack) bulk(sys system, target netip.AddrPort, d time.Duration) *bulkResult {
	r := &bulkResult{}
	if _, err := exec.LookPath("iperf3"); err != nil {
		r.Err = "iperf3 is not installed: apt-get update && apt-get install -y iperf3 (scripts/bench does it)"
		return r
	}
	cp1 := s.lab.Host("cp1")
	for _, name := range []string{"cp2", "cp3"} {
		if st := s.standins[name]; st != nil {
			_ = st.Kill()
		}
	}
	if sys.Name == "keepalived-nft-conntrackd" {
		if err := s.nftTables(map[string]bool{"cp1": true}); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	from := []netip.Addr{s.client.IPv4(), s.vip}
	if sys.Proxy {
		for _, h := range s.lbs {
			from = append(from, h.IPv4())
		}
	}
	if err := s.redirect(cp1, from, true); err != nil {
		r.Err = err.Error()
		return r
	}
	defer func() { _ = s.redirect(cp1, nil, false) }()
	srv := cp1.Command(s.ctx, "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err := srv.Start(); err != nil {
		r.Err = "iperf3 server: " + err.Error()
		return r
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	// HAProxy sends a connection to a server it has not yet marked down
	// and, when that fails, tries again after a second, three times:
	// iperf3's control connection then hangs. Wait out its `fall 3` at
	// `inter 3s`.
	if sys.Proxy {
		waited, ok := s.waitProxyState("DOWN", bulkProxyWait, "cp2", "cp3")
		s.b.Logf("%s bulk: HAProxy took cp2 and cp3 out in %s (every LB logged it: %v)", sys.Name, waited.Round(100*time.Millisecond), ok)
	} else {
		time.Sleep(time.Second)
	}
	var last string
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); {
		r.Tries++
		ctx, cancel := context.WithTimeout(s.ctx, d+10*time.Second)
		out, err := s.client.Command(ctx, "iperf3", "-c", target.Addr().String(), "-p", strconv.Itoa(int(target.Port())),
			"-t", fmt.Sprintf("%.0f", d.Seconds()), "-J", "--connect-timeout", "2000").Output()
		cancel()
		got, perr := parseIperf(out)
		if perr == nil {
			got.Tries = r.Tries
			return &got
		}
		last = perr.Error()
		if err != nil && len(out) == 0 {
			last = err.Error()
		}
		time.Sleep(2 * time.Second)
	}
	r.Err = "no transfer within 25 s: " + last
	return r
}

// redirectRules is the nft script of the bulk section's redirect.
func redirectRules(from []string) string {
	return fmt.Sprintf("table ip benchbulk {\n chain pre {\n  type nat hook prerouting priority dstnat;\n  ip saddr { %s } tcp dport %d redirect to :%d\n }\n}\n",
		strings.Join(from, ", "), servicePort, iperfPort)
}

// redirect adds (or removes) on h an nft redirect of TCP to port 6443
// from the given sources to the iperf3 server.
func (s *stack) redirect(h *netlab.Host, from []netip.Addr, on bool) error {
	if !on {
		return h.Command(s.ctx, "nft", "delete", "table", "ip", "benchbulk").Run()
	}
	var addrs []string
	for _, a := range from {
		addrs = append(addrs, a.String())
	}
	cmd := h.Command(s.ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(redirectRules(addrs))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft redirect on %s: %w: %s", h.Name(), err, out)
	}
	return nil
}
