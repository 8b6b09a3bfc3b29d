package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd is `epconsole man -o DIR` (hidden: for packagers): one man
// page per command, section 1, from the same definitions as the help.
func newManCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:                   "man -o DIR",
		Short:                 "write a man page per command into DIR (for packaging)",
		Hidden:                true,
		Args:                  noArgs(""),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef(exitUsage, "name the directory to write the pages into: -o DIR")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				a.code = 1
				fmt.Fprintf(a.stdio.Err, "epconsole man: %v\n", err)
				return nil
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "EPCONSOLE", Section: "1", Source: "epconsole " + readVersion().Version, Manual: "epconsole manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				a.code = 1
				fmt.Fprintf(a.stdio.Err, "epconsole man: %v\n", err)
				return nil
			}
			fmt.Fprintf(a.stdio.Out, "wrote the man pages into %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output", "o", "", "the `directory` to write the pages into (created if missing)")
	return cmd
}
