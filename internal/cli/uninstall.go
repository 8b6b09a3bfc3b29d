package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/epconsole/epconsole/dataplane"
	"github.com/epconsole/epconsole/internal/components"
	"github.com/epconsole/epconsole/internal/config"
)

// uninstallLong is uninstall's help text.
const uninstallLong = `Removes what the daemon put in the kernel: the configured VIP addresses
from their interfaces (no other address), epconsole's nftables tables in
every family (the "epconsole" DNAT tables, the arp owner-lease table, the
ip6 "epconsole-lease" table; no other table) and the conntrack entries of
connections to a VIP that were DNATed to a backend. It prints each thing
it removed, or "nothing to remove".
It refuses while the daemon runs (its status socket answers, or an
epconsole daemon process runs in this network namespace): stop the daemon
first, or pass --force. It does not remove files (binary, config, keys).
Exit code 0: done; 1: the daemon runs or something could not be removed;
2: usage error.`

// uninstallOptions are uninstall's parsed arguments.
type uninstallOptions struct {
	configPath string
	force      bool
	// netns is the network namespace file to clean (tests); empty: this
	// process's namespace.
	netns string
	// proc is the proc file system to look for daemon processes in
	// (tests); empty: /proc.
	proc string
}

// newUninstallCmd is `epconsole uninstall`.
func newUninstallCmd(a *app) *cobra.Command {
	var o uninstallOptions
	cmd := &cobra.Command{
		Use:                   "uninstall [-c config.hcl] [--force]",
		Short:                 "remove the daemon's nftables tables, VIP addresses and VIP conntrack entries from the kernel",
		Long:                  uninstallLong,
		Args:                  noArgs(" (the config file goes after -c)"),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.code = runUninstall(cmd.Context(), o, a.stdio)
			return nil
		},
	}
	fs := cmd.Flags()
	configFlag(fs, &o.configPath)
	fs.BoolVar(&o.force, "force", false, "remove even while the daemon runs (it puts its state back at its next change)")
	return cmd
}

// runUninstall reads the config for the VIPs and the status socket,
// checks that no daemon runs, and removes the daemon's kernel state.
func runUninstall(ctx context.Context, o uninstallOptions, stdio IO) int {
	file := o.configPath
	if file == "" {
		file = defaultConfigPath()
	}
	cfg, diags := config.Load(file)
	if diags.HasErrors() {
		config.WriteDiagnostics(stdio.Err, diags, nil)
		fmt.Fprintf(stdio.Err, "epconsole uninstall: %s: the config names the VIPs to remove; fix it, or pass the right file with -c\n", file)
		return 1
	}
	if running := daemonRunning(ctx, cfg.Status.Socket, o); len(running) > 0 {
		if !o.force {
			fmt.Fprintf(stdio.Err, "epconsole uninstall: the daemon is running (%s): stop it first (systemctl stop epconsole), "+
				"or pass --force to remove its state from under it\n", strings.Join(running, "; "))
			return 1
		}
		fmt.Fprintf(stdio.Err, "epconsole uninstall: --force: removing the state of a running daemon (%s)\n", strings.Join(running, "; "))
	}
	var opts []dataplane.Option
	if o.netns != "" {
		opts = append(opts, dataplane.WithNetNSPath(o.netns))
	}
	r, err := dataplane.Uninstall(ctx, components.VIPs(cfg), opts...)
	writeRemoved(stdio, r)
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole uninstall: %v\n", err)
		return 1
	}
	return 0
}

// writeRemoved prints one line per thing removed, or "nothing to remove".
func writeRemoved(stdio IO, r dataplane.Removed) {
	if r.Empty() {
		fmt.Fprintln(stdio.Out, "nothing to remove")
		return
	}
	for _, v := range r.VIPs {
		fmt.Fprintf(stdio.Out, "removed VIP %v from %s\n", v.Addr, v.Interface)
	}
	for _, t := range r.Tables {
		fmt.Fprintf(stdio.Out, "removed nftables table %s\n", t)
	}
	switch {
	case r.Flows == 1:
		fmt.Fprintln(stdio.Out, "removed 1 conntrack entry of a connection to a VIP")
	case r.Flows > 1:
		fmt.Fprintf(stdio.Out, "removed %d conntrack entries of connections to the VIPs\n", r.Flows)
	}
}

// daemonRunning says why a daemon is taken to be running: its status
// socket answers, or an epconsole daemon process runs in the network
// namespace uninstall works on. Empty: none found.
func daemonRunning(ctx context.Context, socket string, o uninstallOptions) []string {
	var why []string
	if socket != "" {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", socket); err == nil {
			c.Close()
			why = append(why, "its status socket "+socket+" answers")
		}
	}
	proc := o.proc
	if proc == "" {
		proc = "/proc"
	}
	target := o.netns
	if target == "" {
		target = filepath.Join(proc, "self/ns/net")
	}
	if ino, err := inode(target); err == nil {
		for _, pid := range daemonPIDs(proc, ino) {
			why = append(why, "epconsole daemon process "+strconv.Itoa(pid))
		}
	}
	return why
}

// inode is the inode number of the file at path (a namespace file: the
// namespace's identity).
func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode")
	}
	return st.Ino, nil
}

// daemonPIDs lists the processes under proc (a /proc) running `epconsole
// daemon` or `epconsole --daemon` in the network namespace with inode
// netns (their ns/net link reads "net:[INODE]"), this process excepted.
func daemonPIDs(proc string, netns uint64) []int {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !isDaemonCmdline(cmdline) {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, "ns/net"))
		if err != nil || link != "net:["+strconv.FormatUint(netns, 10)+"]" {
			continue
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// isDaemonCmdline reports whether a /proc/PID/cmdline (NUL-separated
// arguments) is epconsole's daemon: the program is named epconsole and
// its first argument is daemon, --daemon or -daemon.
func isDaemonCmdline(cmdline []byte) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 2 || filepath.Base(args[0]) != "epconsole" {
		return false
	}
	switch args[1] {
	case "daemon", "--daemon", "-daemon":
		return true
	}
	return false
}
