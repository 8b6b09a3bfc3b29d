// Package embedetcd plans and runs the members of a real etcd cluster
// (go.etcd.io/etcd/server/v3/embed) for the lab and the tests: one place
// that issues the members' and a client's certificates from a CA, names
// the initial cluster and turns a member's description into a running
// etcd server. The lab (internal/netlab) runs each member in a process of
// its own inside a host's namespace; the probes' tests (probes/probetest)
// run them in the test process on loopback. The shipping binary does not
// link it.
package embedetcd

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/epconsole/epconsole/internal/pki"
)

// Member is what one member needs to run; it travels as JSON to a lab's
// member process.
type Member struct {
	Name string `json:"name"`
	// DataDir is kept across restarts, so a restarted member rejoins as
	// itself.
	DataDir string `json:"data_dir"`
	// ClientURL is https (client certificates required); PeerURL is https
	// for TLS between the members, http for plain peer traffic.
	ClientURL      string `json:"client_url"`
	PeerURL        string `json:"peer_url"`
	InitialCluster string `json:"initial_cluster"`
	Token          string `json:"token"`
	// CertFile and KeyFile are the member's certificate (server and
	// client: a member is a client of its peers), CAFile the CA every
	// certificate of the cluster comes from.
	CertFile   string `json:"cert_file"`
	KeyFile    string `json:"key_file"`
	CAFile     string `json:"ca_file"`
	TickMs     uint   `json:"tick_ms"`
	ElectionMs uint   `json:"election_ms"`
}

// Host is where a planned member runs.
type Host struct {
	// Name names the member (and its certificate).
	Name string
	// ClientURL and PeerURL as in Member.
	ClientURL, PeerURL string
	// IPs and DNSNames go into the member's certificate.
	IPs      []netip.Addr
	DNSNames []string
}

// Options describe a cluster to plan.
type Options struct {
	// CA issues every certificate; CAFile is its certificate on disk.
	CA     *pki.CA
	CAFile string
	// Dir gets the certificates (Dir/certs) and the members' data
	// directories (Dir/NAME.etcd).
	Dir string
	// Hosts each get one member; at least one.
	Hosts []Host
	// Token is the initial cluster token.
	Token string
	// Heartbeat and Election are raft's timings; Election is at least 5
	// heartbeats.
	Heartbeat, Election time.Duration
	// ClientName is the common name of the client certificate.
	ClientName string
}

// Plan is a planned cluster: its members and a client certificate they
// accept.
type Plan struct {
	Members []Member
	// Client is the client certificate, also written to ClientCertFile and
	// ClientKeyFile.
	Client                        *pki.Leaf
	ClientCertFile, ClientKeyFile string
}

// NewPlan issues and writes the certificates and describes every member.
func NewPlan(o Options) (Plan, error) {
	if len(o.Hosts) == 0 {
		return Plan{}, errors.New("etcd needs at least one member")
	}
	if o.Heartbeat <= 0 || o.Election < 5*o.Heartbeat {
		return Plan{}, fmt.Errorf("etcd election timeout %s must be at least 5 heartbeats (%s)", o.Election, o.Heartbeat)
	}
	certs := filepath.Join(o.Dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return Plan{}, fmt.Errorf("etcd certificate directory: %w", err)
	}
	var p Plan
	var err error
	if p.Client, err = o.CA.Issue(pki.LeafOptions{CommonName: o.ClientName, Client: true}); err != nil {
		return Plan{}, fmt.Errorf("etcd client certificate: %w", err)
	}
	if p.ClientCertFile, p.ClientKeyFile, err = p.Client.WriteFiles(certs, "client"); err != nil {
		return Plan{}, err
	}
	var initial []string
	seen := map[string]bool{}
	for _, h := range o.Hosts {
		if seen[h.Name] {
			return Plan{}, fmt.Errorf("etcd member %s given twice", h.Name)
		}
		seen[h.Name] = true
		leaf, err := o.CA.Issue(pki.LeafOptions{
			CommonName: h.Name, DNSNames: h.DNSNames, IPs: h.IPs,
			Both: true, // a member is server and client of its peers
		})
		if err != nil {
			return Plan{}, fmt.Errorf("etcd certificate for %s: %w", h.Name, err)
		}
		certFile, keyFile, err := leaf.WriteFiles(certs, h.Name)
		if err != nil {
			return Plan{}, err
		}
		p.Members = append(p.Members, Member{
			Name: h.Name, DataDir: filepath.Join(o.Dir, h.Name+".etcd"),
			ClientURL: h.ClientURL, PeerURL: h.PeerURL, Token: o.Token,
			CertFile: certFile, KeyFile: keyFile, CAFile: o.CAFile,
			TickMs: uint(o.Heartbeat.Milliseconds()), ElectionMs: uint(o.Election.Milliseconds()),
		})
		initial = append(initial, h.Name+"="+h.PeerURL)
	}
	for i := range p.Members {
		p.Members[i].InitialCluster = strings.Join(initial, ",")
	}
	return p, nil
}

// Start starts member m in this process and returns once it listens; it
// has joined its cluster when Server.ReadyNotify is closed. log nil
// discards etcd's logs. Data is not fsynced: a lab's or a test's data is
// thrown away with it, and a busy disk would cost heartbeats.
func Start(m Member, log *zap.Logger) (*embed.Etcd, error) {
	peer, err := url.Parse(m.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("peer URL: %w", err)
	}
	client, err := url.Parse(m.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("client URL: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.DataDir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	tlsInfo := transport.TLSInfo{CertFile: m.CertFile, KeyFile: m.KeyFile, TrustedCAFile: m.CAFile, ClientCertAuth: true}
	cfg.ClientTLSInfo = tlsInfo
	if peer.Scheme == "https" {
		cfg.PeerTLSInfo = tlsInfo
	}
	cfg.InitialCluster = m.InitialCluster
	cfg.InitialClusterToken = m.Token
	cfg.ClusterState = embed.ClusterStateFlagNew // ignored once the data directory exists
	cfg.TickMs, cfg.ElectionMs = m.TickMs, m.ElectionMs
	cfg.UnsafeNoFsync = true
	cfg.Metrics = "basic"
	if log == nil {
		log = zap.NewNop()
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(log)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	return e, nil
}
