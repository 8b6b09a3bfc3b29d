package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError is a command line a command cannot run: an unknown flag, a
// stray argument, a bad value. code is the exit code (2; check's is 3,
// Nagios UNKNOWN).
type usageError struct {
	code int
	err  error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef is a usageError with code and a formatted message.
func usagef(code int, format string, a ...any) error {
	return usageError{code: code, err: fmt.Errorf(format, a...)}
}

// flagError makes pflag's parse errors usage errors with code, in the
// words Go's flag package used ("flag provided but not defined: -x"),
// pointing a Go-style single-dash long flag (-json) at its -- spelling.
func flagError(code int) func(*cobra.Command, error) error {
	return func(c *cobra.Command, err error) error {
		var ne *pflag.NotExistError
		if !errors.As(err, &ne) {
			return usageError{code: code, err: err}
		}
		group := ne.GetSpecifiedShortnames()
		if group == "" {
			name := ne.GetSpecifiedName()
			if near := nearestFlag(c, name); near != "" {
				return usagef(code, "flag provided but not defined: --%s (did you mean --%s?)", name, near)
			}
			return usagef(code, "flag provided but not defined: --%s", name)
		}
		msg := "flag provided but not defined: -" + ne.GetSpecifiedName()
		switch {
		case len(group) > 1 && c.Flags().Lookup(group) != nil:
			msg += fmt.Sprintf(" (in -%s; did you mean --%s?)", group, group)
		case len(group) > 1:
			msg += fmt.Sprintf(" (in -%s)", group)
		}
		return usageError{code: code, err: errors.New(msg)}
	}
}

// nearestFlag is the command's flag whose long name is closest to name
// (an edit distance of at most 2, as cobra's command suggestions), or "".
func nearestFlag(c *cobra.Command, name string) string {
	best, bestD := "", 3
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if d := editDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// noArgs accepts no positional argument; hint follows the complaint.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef(exitUsage, "unexpected argument %q%s", args[0], hint)
		}
		return nil
	}
}

// configFlag declares -c/--config, the config file every command but
// version reads (empty: defaultConfigPath).
func configFlag(fs *pflag.FlagSet, path *string) {
	fs.StringVarP(path, "config", "c", "", "config `file` (default ./config.hcl if it exists, else "+systemConfig+")")
}

// synopsisKey annotates a command with its usage lines, one per line,
// where cobra's one UseLine does not say enough.
const synopsisKey = "epconsole/synopsis"

// writeHelp prints c's help: usage lines, description, subcommands and
// flags.
func writeHelp(w io.Writer, c *cobra.Command) {
	var b strings.Builder
	synopsis := c.UseLine()
	if s, ok := c.Annotations[synopsisKey]; ok {
		synopsis = s
	}
	for i, line := range strings.Split(synopsis, "\n") {
		if i == 0 {
			fmt.Fprintf(&b, "usage: %s\n", line)
		} else {
			fmt.Fprintf(&b, "       %s\n", line)
		}
	}
	if long := strings.TrimSpace(c.Long); long != "" {
		fmt.Fprintf(&b, "\n%s\n", long)
	}
	if c.HasAvailableSubCommands() {
		b.WriteString("\ncommands:\n")
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(&b, "  %-10s %s\n", sub.Name(), sub.Short)
			}
		}
	}
	if flags := c.LocalFlags().FlagUsages(); flags != "" {
		fmt.Fprintf(&b, "\nflags:\n%s", flags)
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nRun `%s <command> -h` for a command's flags.\n", c.CommandPath())
	}
	io.WriteString(w, b.String())
}
