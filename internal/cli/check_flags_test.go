package cli

import "context"

// parseCheckArgs parses check's arguments (those after `check`) as
// `epconsole check` would. ok is false when check would not run: code is
// then 0 after -h (the help is on stdio.Out), else the usage error's.
func parseCheckArgs(args []string, stdio IO) (o checkOptions, code int, ok bool) {
	a := &app{stdio: stdio}
	root := newRoot(a, newCheckCmd(a, func(_ context.Context, parsed checkOptions, _ IO) int {
		o, ok = parsed, true
		return exitOK
	}))
	code = a.execute(context.Background(), root, append([]string{"check"}, args...))
	return o, code, ok
}
