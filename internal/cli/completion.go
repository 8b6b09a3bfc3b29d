package cli

import (
	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/internal/config"
)

// completionLong is completion's help text.
const completionLong = `Prints the shell completion script for bash, zsh or fish, generated from
the same command definitions as the help. The scripts ask epconsole itself
for completions, so drain and undrain complete backend names and handoff
peer names from the config.

  bash:  epconsole completion bash > /etc/bash_completion.d/epconsole
         (needs the bash-completion package)
  zsh:   epconsole completion zsh > "${fpath[1]}/_epconsole"
  fish:  epconsole completion fish > ~/.config/fish/completions/epconsole.fish`

// newCompletionCmd is `epconsole completion bash|zsh|fish`.
func newCompletionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:                   "completion bash|zsh|fish",
		Short:                 "print the shell completion script for bash, zsh or fish",
		Long:                  completionLong,
		ValidArgs:             []string{"bash", "zsh", "fish"},
		DisableFlagsInUseLine: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(exitUsage, "name one shell: bash, zsh or fish")
			}
			switch args[0] {
			case "bash", "zsh", "fish":
				return nil
			}
			return usagef(exitUsage, "no completion for %q: bash, zsh or fish", args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), a.stdio.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

// completeFromConfig completes a command's one argument with names from
// the config the command's -c flag names (or the default one): backends
// (peers false) or peers.
func completeFromConfig(t *daemonTarget, peers bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		path := t.configPath
		if path == "" {
			path = defaultConfigPath()
		}
		cfg, diags := config.Load(path)
		if diags.HasErrors() {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		if peers {
			for _, p := range cfg.Peers {
				names = append(names, p.Name)
			}
		} else {
			for _, b := range cfg.Backends {
				names = append(names, b.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
