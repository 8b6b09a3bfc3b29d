package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/epconsole/epconsole/internal/config"
	"github.com/epconsole/epconsole/internal/status"
)

// Exit codes of the commands that talk to the daemon (status, drain,
// undrain, handoff); 2 is a usage error as everywhere.
const (
	// exitRefused: the daemon answered but refused (an unknown backend or
	// peer, not the VIP owner, a peer that cannot take the VIP, permission).
	exitRefused = 1
	// exitNoDaemon: no daemon answers on the socket, or it did not confirm
	// in time.
	exitNoDaemon = 3
)

// defaultSocket is status.socket's default, used when no config is found.
const defaultSocket = "/run/epconsole/status.sock"

// daemonTarget is where a daemon command finds the daemon: --socket, else
// status.socket of the config.
type daemonTarget struct {
	configPath string
	socket     string
}

// daemonFlags declares -c/--config and --socket.
func daemonFlags(fs *pflag.FlagSet, t *daemonTarget) {
	configFlag(fs, &t.configPath)
	fs.StringVar(&t.socket, "socket", "", "the daemon's status `socket` (default: status.socket in the config, else "+defaultSocket+")")
}

// resolve returns the socket path: --socket; else status.socket of the
// config named by -c (an error when it cannot be read); else that of the
// default config, or the default socket when that config is missing or
// unreadable (a note on warn says so).
func (t daemonTarget) resolve(warn io.Writer) (string, error) {
	if t.socket != "" {
		return t.socket, nil
	}
	path := t.configPath
	if path == "" {
		path = defaultConfigPath()
	}
	// The socket path needs no secret: a user who may not read the gossip
	// key may still use the socket (status.socket_group).
	cfg, diags := config.Load(path, config.WithoutSecrets())
	if !diags.HasErrors() {
		return cfg.Status.Socket, nil
	}
	if t.configPath != "" {
		_ = config.WriteDiagnostics(warn, diags, nil)
		return "", usagef(exitUsage, "cannot read the socket path from %s (epconsole validate -c %s), or give --socket", path, path)
	}
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(warn, "epconsole: %s is not usable (epconsole validate -c %s); trying the default socket %s\n", path, path, defaultSocket)
	}
	return defaultSocket, nil
}

// daemonExit turns a client error into a message on w and an exit code:
// 3 when no daemon answers (with how to start one), 1 when it refused.
func daemonExit(w io.Writer, cmd string, err error) int {
	switch {
	case errors.Is(err, status.ErrNoDaemon):
		fmt.Fprintf(w, "epconsole %s: %v\nstart it with `systemctl start epconsole` (or `epconsole daemon -c config.hcl`), or name its socket with --socket\n", cmd, err)
		return exitNoDaemon
	case errors.Is(err, context.DeadlineExceeded):
		hint := "raise --timeout, or see"
		if cmd == "status" {
			hint = "see"
		}
		fmt.Fprintf(w, "epconsole %s: %v (no answer in time: %s whether the daemon is hung: journalctl -u epconsole)\n", cmd, err, hint)
		return exitNoDaemon
	case errors.Is(err, status.ErrPermission), errors.Is(err, status.ErrNotFound),
		errors.Is(err, status.ErrConflict), errors.Is(err, status.ErrUnsupported):
		fmt.Fprintf(w, "epconsole %s: %v\n", cmd, err)
		return exitRefused
	}
	fmt.Fprintf(w, "epconsole %s: %v\n", cmd, err)
	return exitRefused
}
