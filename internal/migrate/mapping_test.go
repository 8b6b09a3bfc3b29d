package migrate

import (
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/config"
)

const mappingKeepalived = `vrrp_instance VI_1 {
    interface eth0
    priority 110
    unicast_src_ip 10.0.0.11
    unicast_peer {
        10.0.0.12
    }
    virtual_ipaddress {
        10.0.0.100
    }
}
`

// TestImportMapping: each HAProxy check, TLS and balance setting maps to
// the health kind, tls.ca_file and balance mode it stands for.
func TestImportMapping(t *testing.T) {
	cases := []struct {
		name     string
		backend  string
		kind     config.HealthKind
		path     string
		ca       string
		balance  config.BalanceMode
		interval string
		timeout  string
	}{
		{"tcp-check", "option tcp-check\n server cp1 10.0.0.1:6443 check", "tcp", "", "", "connection", "1s", "500ms"},
		{"plain check", "server cp1 10.0.0.1:6443 check", "tcp", "", "", "connection", "1s", "500ms"},
		{"ssl-hello-chk", "option ssl-hello-chk\n server cp1 10.0.0.1:6443 check", "tls", "", "", "connection", "1s", "500ms"},
		{"check-ssl", "server cp1 10.0.0.1:6443 check check-ssl verify none", "tls", "", "", "connection", "1s", "500ms"},
		{"httpchk over TLS", "option httpchk GET /readyz\n server cp1 10.0.0.1:6443 check check-ssl verify none", "https", "/readyz", "", "connection", "1s", "500ms"},
		{"http-check send", "option httpchk\n http-check send meth GET uri /livez\n server cp1 10.0.0.1:6443 check check-ssl", "https", "/livez", "", "connection", "1s", "500ms"},
		{"ca-file", "option httpchk GET /readyz\n server cp1 10.0.0.1:6443 check check-ssl verify required ca-file /etc/kubernetes/pki/ca.crt", "https", "/readyz", "/etc/kubernetes/pki/ca.crt", "connection", "1s", "500ms"},
		{"balance source", "balance source\n server cp1 10.0.0.1:6443 check", "tcp", "", "", "source", "1s", "500ms"},
		{"balance leastconn", "balance leastconn\n server cp1 10.0.0.1:6443 check", "tcp", "", "", "connection", "1s", "500ms"},
		{"timing", "timeout check 300ms\n default-server inter 400ms fall 5 rise 1\n server cp1 10.0.0.1:6443 check", "tcp", "", "", "connection", "400ms", "300ms"},
		{"fast inter clamps the timeout", "server cp1 10.0.0.1:6443 check inter 100ms", "tcp", "", "", "connection", "100ms", "50ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hp := "frontend api\n bind *:6443\n default_backend cps\nbackend cps\n " + tc.backend + "\n"
			res, err := Import(Source{Name: "h.cfg", Data: []byte(hp)}, []Source{{Name: "k.conf", Data: []byte(mappingKeepalived)}}, ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			text := res.Configs[0].HCL
			// Without the CA file the config cannot validate here; the
			// mapping itself is what this test checks.
			if tc.ca != "" {
				if !strings.Contains(string(text), `ca_file = "`+tc.ca+`"`) {
					t.Errorf("ca_file not set to %s:\n%s", tc.ca, text)
				}
				text = []byte(strings.Replace(string(text), `ca_file = "`+tc.ca+`"`, `ca_file = ""`, 1))
			}
			cfg := parseGenerated(t, "lb.hcl", text, DefaultKeyFile)
			h := cfg.Health
			if h.Kind != tc.kind || (tc.path != "" && h.Path != tc.path) || h.Interval.String() != tc.interval || h.Timeout.String() != tc.timeout {
				t.Errorf("health %+v; want kind %s path %q interval %s timeout %s", h, tc.kind, tc.path, tc.interval, tc.timeout)
			}
			if cfg.Balance.Mode != tc.balance {
				t.Errorf("balance %s, want %s", cfg.Balance.Mode, tc.balance)
			}
			if !cfg.Node.Preempt || cfg.Node.Priority != 110 || cfg.Node.Name != "lb-11" || cfg.Peers[0].Name != "lb-12" {
				t.Errorf("node %+v peers %+v", cfg.Node, cfg.Peers)
			}
		})
	}
}

func TestImportFilesMustAgreeOnTheVIP(t *testing.T) {
	other := strings.NewReplacer("10.0.0.11", "10.0.0.12", "        10.0.0.12\n", "        10.0.0.11\n", "10.0.0.100", "10.0.0.101").Replace(mappingKeepalived)
	hp := Source{Name: "h.cfg", Data: []byte("frontend api\n bind *:6443\n default_backend cps\nbackend cps\n server cp1 10.0.0.1:6443 check\n")}
	_, err := Import(hp, []Source{{Name: "a.conf", Data: []byte(mappingKeepalived)}, {Name: "b.conf", Data: []byte(other)}}, ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "b.conf:8: error: virtual_ipaddress [10.0.0.101] differs") {
		t.Errorf("VIP mismatch: %v", err)
	}
}

func TestImportListenSection(t *testing.T) {
	hp := "listen k8s-api\n bind :::6443\n mode tcp\n option ssl-hello-chk\n server cp1 10.0.0.1:6443 check\n server cp2 10.0.0.2 check\n"
	res, err := Import(Source{Name: "h.cfg", Data: []byte(hp)}, []Source{{Name: "k.conf", Data: []byte(mappingKeepalived)}},
		ImportOptions{ClusterName: "prod", DNSNames: []string{"k8s.example.internal"}, Nodes: []NodeName{{"lb1", addr("10.0.0.11")}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseGenerated(t, "lb.hcl", res.Configs[0].HCL, DefaultKeyFile)
	if cfg.ClusterName != "prod" || cfg.EndpointDNSNames[0] != "k8s.example.internal" || cfg.Node.Name != "lb1" || cfg.Health.Kind != "tls" {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Backends) != 2 || cfg.Backends[1].Port != 6443 || cfg.Backends[1].Name != "cp2" {
		t.Errorf("backends %+v", cfg.Backends)
	}
}

func TestParseNodeName(t *testing.T) {
	cases := map[string]string{"lb1=10.0.0.11": "", "lb1=fd00::11": "", "lb1": "want NAME=ADDRESS", "=10.0.0.1": "want NAME=ADDRESS", "lb1=lb1.lan": "not an IP address"}
	for in, wantErr := range cases {
		n, err := ParseNodeName(in)
		switch {
		case wantErr == "" && (err != nil || n.Name != "lb1" || !n.Addr.IsValid()):
			t.Errorf("ParseNodeName(%q) = %+v, %v", in, n, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("ParseNodeName(%q) error %v, want %q", in, err, wantErr)
		}
	}
}
