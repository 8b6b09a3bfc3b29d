package migrate

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/epconsole/epconsole/internal/migrate/diag"
)

func TestImportBrokenInputs(t *testing.T) {
	const goodHAProxy = "haproxy-tcp-check.cfg"
	const goodKeepalived = "keepalived-unicast-master.conf"
	cases := []struct {
		name, haproxy, keepalived string
		wantAt                    string // file:line of the error
		wantMsg                   string
	}{
		{"unterminated brace", goodHAProxy, "broken-unterminated-brace.conf", "broken-unterminated-brace.conf:1", "unterminated brace"},
		{"unknown keepalived section", goodHAProxy, "broken-unknown-section.conf", "broken-unknown-section.conf:2", `unknown section "vrrp_instanse"`},
		{"missing virtual_ipaddress", goodHAProxy, "broken-missing-vip.conf", "broken-missing-vip.conf:1", "no virtual_ipaddress"},
		{"bad IP", goodHAProxy, "broken-bad-ip.conf", "broken-bad-ip.conf:3", `"192.168.2.341" is not an IP address`},
		{"unknown haproxy section", "broken-unknown-section.cfg", goodKeepalived, "broken-unknown-section.cfg:2", `unknown section "frontnd"`},
		{"server without address", "broken-server-without-address.cfg", goodKeepalived, "broken-server-without-address.cfg:7", "server cp2 without an address"},
		{"bad server IP", "broken-bad-server-ip.cfg", goodKeepalived, "broken-bad-server-ip.cfg:6", `"192.168.1.302" is not a valid IP address`},
		{"server host name", "broken-host-name.cfg", goodKeepalived, "broken-host-name.cfg:5", "is a host name"},
		{"missing backend", "broken-missing-backend.cfg", goodKeepalived, "broken-missing-backend.cfg:3", "default_backend k8s-apiservers: no backend section"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Import(source(t, tc.haproxy), sources(t, tc.keepalived), ImportOptions{})
			if err == nil {
				t.Fatalf("Import succeeded; want an error at %s", tc.wantAt)
			}
			var de diag.Errors
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a diag.Errors", err)
			}
			if res == nil || len(res.Configs) != 0 {
				t.Fatalf("a failed import returned configs: %+v", res)
			}
			found := false
			for _, d := range de {
				if strings.HasPrefix(d.String(), tc.wantAt+": error: ") && strings.Contains(d.Message, tc.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error %q at %s; got:\n%v", tc.wantMsg, tc.wantAt, err)
			}
		})
	}
}

func TestImportWithoutVIPOrNodes(t *testing.T) {
	_, err := Import(source(t, "haproxy-global-tcp-check.cfg"), nil, ImportOptions{})
	if err == nil {
		t.Fatal("a haproxy-only import without VIP, interface and nodes succeeded")
	}
	for _, want := range []string{"no VIP given", "no interface given", "no LB node given"} {
		if !strings.Contains(err.Error(), "haproxy-global-tcp-check.cfg:1: error: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q at file:line:\n%v", want, err)
		}
	}
	// Multicast VRRP names no node address: the import must be told.
	_, err = Import(source(t, "haproxy-tcp-check.cfg"), sources(t, "keepalived-inline-blocks.conf"), ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "keepalived-inline-blocks.conf:1: error: vrrp_instance VI_1 has no unicast_src_ip") {
		t.Errorf("multicast import without node addresses: %v", err)
	}
}

// TestImportReportsUnknownKeywords: nothing is dropped silently; unknown
// keywords are warnings at their line, in the diagnostics and in the
// generated config's closing list.
func TestImportReportsUnknownKeywords(t *testing.T) {
	res, err := Import(source(t, "unknown-keywords.cfg"), sources(t, "unknown-keywords.conf"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Configs) != 1 {
		t.Fatalf("%d configs, want 1", len(res.Configs))
	}
	nc := res.Configs[0]
	cfg := parseGenerated(t, nc.Name, nc.HCL, DefaultKeyFile)
	for _, want := range []string{
		`unknown-keywords.cfg:3: warning: unknown keyword "frobnicate"`,
		`unknown-keywords.cfg:8: warning: unknown server option "shiny"`,
		`unknown-keywords.conf:16: warning: unknown keyword "sparkle"`,
		`unknown-keywords.conf:2: note: global_defs router_id`,
		`unknown-keywords.cfg:7: note: http-check expect status 200`,
	} {
		inDiags := false
		for _, d := range res.Diagnostics {
			if strings.HasPrefix(d.String(), want) {
				inDiags = true
			}
		}
		if !inDiags {
			t.Errorf("diagnostics lack %q", want)
		}
		if !strings.Contains(string(nc.HCL), "#   "+want) {
			t.Errorf("the generated config's closing list lacks %q", want)
		}
	}
	// The mapping: option httpchk + check-ssl verify none -> https without
	// a CA; default-server timing -> health timing; nopreempt -> preempt
	// false; the unicast peers -> peers with derived names.
	h := cfg.Health
	if h.Kind != "https" || h.Path != "/readyz" || h.Interval.String() != "2s" || h.FastInterval.String() != "500ms" || h.Rise != 3 || h.Fall != 2 {
		t.Errorf("health %+v", h)
	}
	if cfg.TLS.CAFile != "" {
		t.Errorf("verify none gave ca_file %q", cfg.TLS.CAFile)
	}
	if cfg.Node.Preempt || cfg.Node.Priority != 90 || cfg.Node.Name != "lb-12" {
		t.Errorf("node %+v", cfg.Node)
	}
	if len(cfg.Peers) != 2 || cfg.Peers[0].Name != "lb-11" || cfg.Peers[1].Name != "lb-13" {
		t.Errorf("peers %+v", cfg.Peers)
	}
	if !strings.Contains(string(nc.HCL), "advert_int 2 (unknown-keywords.conf:10)") {
		t.Errorf("the advert_int mapping is not explained")
	}
	if len(res.Notes) == 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "lb-11 (192.168.1.11) is known only as a unicast_peer") {
		t.Errorf("notes %q lack the peers without a config", res.Notes)
	}
}

// TestImportValidatesWhatItWrites: a config internal/config would refuse
// is an error of the import, at the generated file's line.
func TestImportValidatesWhatItWrites(t *testing.T) {
	opts := ImportOptions{VIPs: []netip.Addr{addr("10.0.1.11")}, Interface: "ens5", Nodes: []NodeName{{"lb-0", addr("10.0.1.5")}}}
	res, err := Import(source(t, "haproxy-global-tcp-check.cfg"), nil, opts)
	if err == nil {
		t.Fatal("an import whose VIP is a backend's address succeeded")
	}
	if len(res.Configs) != 0 || !strings.Contains(err.Error(), "lb-0/config.hcl:") || !strings.Contains(err.Error(), "VIP is a backend address") {
		t.Errorf("error %v", err)
	}
}
