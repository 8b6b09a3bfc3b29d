package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestShipsNoLabCode: the shipping binary links no test or lab code — no
// testing package, no embedded etcd server (nor raft, nor bbolt), no
// stand-in apiserver, lab PKI, namespaces lab or test helpers. The demo
// has a binary of its own, cmd/epconsole-lab.
func TestShipsNoLabCode(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"testing",
		"go.etcd.io/etcd/server/v3",
		"go.etcd.io/raft/v3",
		"go.etcd.io/bbolt",
		"github.com/epconsole/epconsole/internal/standin",
		"github.com/epconsole/epconsole/internal/netlab",
		"github.com/epconsole/epconsole/internal/lab",
		"github.com/epconsole/epconsole/internal/labcli",
		"github.com/epconsole/epconsole/internal/pki",
		"github.com/epconsole/epconsole/internal/embedetcd",
		"github.com/epconsole/epconsole/internal/testenv",
		"github.com/epconsole/epconsole/probes/probetest",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				t.Errorf("cmd/epconsole links %s", p)
			}
		}
	}
}
