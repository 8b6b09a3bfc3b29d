package labcli

import (
	"slices"
	"testing"
)

// TestRoute: the demo binary runs the lab for no arguments, its flags, its
// subcommands and the old `lab ...` spelling, and hands everything else
// (the daemon the LB peers run, check, console, ...) to epconsole's CLI.
func TestRoute(t *testing.T) {
	tests := []struct {
		args    []string
		lab     bool
		labArgs []string
	}{
		{nil, true, nil},
		{[]string{"--headless", "--duration", "10s"}, true, []string{"--headless", "--duration", "10s"}},
		{[]string{"-h"}, true, []string{"-h"}},
		{[]string{"lab"}, true, []string{}},
		{[]string{"lab", "--peers", "5"}, true, []string{"--peers", "5"}},
		{[]string{"--colocated", "--headless"}, true, []string{"--colocated", "--headless"}},
		{[]string{"fault", "stop-backend"}, true, []string{"fault", "stop-backend"}},
		{[]string{"heal", "partition"}, true, []string{"heal", "partition"}},
		{[]string{"down"}, true, []string{"down"}},
		{[]string{"lab", "down"}, true, []string{"down"}},
		{[]string{"--daemon", "-c", "lb1.hcl"}, false, nil},
		{[]string{"-daemon"}, false, nil},
		{[]string{"check", "-c", "lb1.hcl"}, false, nil},
		{[]string{"console", "--socket", "a,b"}, false, nil},
		{[]string{"version"}, false, nil},
		{[]string{"help"}, false, nil},
	}
	for _, tt := range tests {
		got, lab := Route(tt.args)
		if lab != tt.lab || lab && !slices.Equal(got, tt.labArgs) {
			t.Errorf("Route(%q) = %q, %v; want %q, %v", tt.args, got, lab, tt.labArgs, tt.lab)
		}
	}
}
