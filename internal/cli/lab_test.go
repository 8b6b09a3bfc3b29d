package cli

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
)

// TestLabDemo runs the README's main command for a few seconds: requests
// through the VIP must reach every backend over IPv4 and IPv6 with no
// failure, and the lab must leave no namespace behind.
func TestLabDemo(t *testing.T) {
	testenv.NeedNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"lab", "--duration", "3s", "--rate", "30"}, IO{Out: &out, Err: &errb})
	t.Logf("lab output:\n%s\nstderr:\n%s", out.String(), errb.String())
	if code != 0 {
		t.Fatalf("lab exit code %d", code)
	}
	m := regexp.MustCompile(`totals: cp1=(\d+) cp2=(\d+) cp3=(\d+) failed=(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no totals line with all three backends in the output")
	}
	for i, name := range []string{"cp1", "cp2", "cp3"} {
		if n, _ := strconv.Atoi(m[i+1]); n == 0 {
			t.Errorf("backend %s answered no request through the VIP", name)
		}
	}
	if m[4] != "0" {
		t.Errorf("%s requests failed through the VIP, want 0", m[4])
	}
	if !strings.Contains(out.String(), "IPv6 ok") {
		t.Errorf("no IPv6 requests in the output")
	}
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), labPrefix+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

func TestLabRefusesBadRate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"lab", "--rate", "0"}, IO{Out: &out, Err: &errb}); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "--rate 0 is out of range") {
		t.Errorf("stderr %q does not say what is wrong", errb.String())
	}
}
