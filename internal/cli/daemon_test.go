package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDaemonFlags(t *testing.T) {
	tests := []struct {
		desc     string
		args     []string
		code     int
		out, err string
	}{
		{"help", []string{"--daemon", "-h"}, 0, "usage: epconsole --daemon", ""},
		{"unknown flag", []string{"--daemon", "--nope"}, 2, "", "flag provided but not defined"},
		{"stray argument", []string{"--daemon", "config.hcl"}, 2, "", `unexpected argument "config.hcl"`},
		{"bad log level", []string{"--daemon", "--log-level", "loud"}, 2, "", "--log-level"},
		{"missing config", []string{"--daemon", "-c", "/nonexistent/epconsole/config.hcl"}, 1, "", "Cannot read config file"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), tc.args, IO{Out: &out, Err: &errb})
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant %q / %q", out.String(), errb.String(), tc.out, tc.err)
			}
		})
	}
}
