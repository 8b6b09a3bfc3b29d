package config

import (
	"regexp"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	files := memFiles(map[string]string{"/cfg/k": mustRead(t, "testdata/config/gossip.key")})
	const src = `cluster_name = "t"
vip "198.18.6.100" {
  interface = "eth0"
}
vip "fd00:198:18:6::100" {
  interface = "eth0"
}
node {
  name        = "lb1"
  gossip_bind = "198.18.6.11:7946"
}
peer "lb2" {
  address = "198.18.6.12:7946"
}
gossip {
  key_file = "k"
}
backend "cp1" {
  address = "198.18.6.21"
}
backend "cp2" {
  address = "198.18.6.22"
}
backend "cp3" {
  address = "fd00:198:18:6::23"
}
`
	digest := func(t *testing.T, s string) string {
		t.Helper()
		c, diags := Parse([]byte(s), "/cfg/config.hcl", files)
		if diags.HasErrors() {
			t.Fatalf("%s\n%s", s, strings.Join(lines(diags), "\n"))
		}
		return c.Digest()
	}
	ref := digest(t, src)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(ref) {
		t.Fatalf("digest %q is not sha256 hex", ref)
	}
	if again := digest(t, src); again != ref {
		t.Fatalf("digest not deterministic: %s then %s", ref, again)
	}
	swapVIPs := strings.Replace(strings.Replace(strings.Replace(src,
		`vip "198.18.6.100"`, `vip "X"`, 1),
		`vip "fd00:198:18:6::100"`, `vip "198.18.6.100"`, 1),
		`vip "X"`, `vip "fd00:198:18:6::100"`, 1)
	swapBackends := strings.Replace(strings.Replace(strings.Replace(src,
		`address = "198.18.6.21"`, `address = "X"`, 1),
		`address = "198.18.6.22"`, `address = "198.18.6.21"`, 1),
		`address = "X"`, `address = "198.18.6.22"`, 1)
	tests := []struct {
		desc string
		src  string
		same bool
	}{
		// Node-local settings do not change the digest.
		{"other node name and address", strings.NewReplacer(`name        = "lb1"`, `name = "lb9"`, `"198.18.6.11:7946"`, `"198.18.6.19:7946"`).Replace(src), true},
		{"other peers", strings.Replace(src, `peer "lb2"`, `peer "lbx"`, 1), true},
		{"other interface", strings.Replace(src, `interface = "eth0"`, `interface = "bond0"`, 1), true},
		{"vip blocks in another order", swapVIPs, true},
		{"explicit defaults", src + "balance {\n  mode = \"connection\"\n  seed = \"0x5eed\"\n  slots = 1021\n  panic_routing = true\n}\nhealth {\n  interval = \"2s\"\n}\n", true},
		{"heartbeat and priority", strings.Replace(src, `gossip_bind = "198.18.6.11:7946"`, "gossip_bind = \"198.18.6.11:7946\"\npriority = 7", 1), true},
		// Cluster-wide settings do.
		{"cluster name", strings.Replace(src, `cluster_name = "t"`, `cluster_name = "u"`, 1), false},
		{"backend order", swapBackends, false},
		{"backend port", strings.Replace(src, `address = "198.18.6.22"`, "address = \"198.18.6.22\"\nport = 6444", 1), false},
		{"backend name", strings.Replace(src, `backend "cp2"`, `backend "cp9"`, 1), false},
		{"backend removed", strings.Replace(src, "backend \"cp2\" {\n  address = \"198.18.6.22\"\n}\n", "", 1), false},
		{"VIP address", strings.Replace(src, `vip "198.18.6.100"`, `vip "198.18.6.101"`, 1), false},
		{"VIP port", strings.Replace(src, `interface = "eth0"`, "interface = \"eth0\"\nport = 443", 1), false},
		{"balance mode", src + "balance {\n  mode = \"source\"\n}\n", false},
		{"seed", src + "balance {\n  seed = 1\n}\n", false},
		{"slots", src + "balance {\n  slots = 1031\n}\n", false},
		{"panic routing off", src + "balance {\n  panic_routing = false\n}\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := digest(t, tc.src)
			if (got == ref) != tc.same {
				t.Errorf("digest equal to the reference = %v, want %v", got == ref, tc.same)
			}
		})
	}
}
