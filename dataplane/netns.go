package dataplane

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vishvananda/netns"

	"github.com/epconsole/epconsole/internal/netnsx"
)

// Option configures a Dataplane, a VIP or a Conntrack.
type Option func(*options)

type options struct {
	nsFd       int    // namespace fd owned by the caller; -1: none given
	nsPath     string // namespace file to open (and close on Close)
	log        *slog.Logger
	flushFlows bool
}

func buildOptions(opts []Option) options {
	o := options{nsFd: -1, log: slog.Default(), flushFlows: true}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithNetNSFd makes the component work in the network namespace that fd
// refers to. The caller keeps the fd open for the component's lifetime and
// closes it afterwards.
func WithNetNSFd(fd int) Option {
	return func(o *options) { o.nsFd, o.nsPath = fd, "" }
}

// WithNetNSPath makes the component work in the network namespace bound at
// path (for example /proc/PID/ns/net). The component opens it and closes it
// on Close.
func WithNetNSPath(path string) Option {
	return func(o *options) { o.nsPath, o.nsFd = path, -1 }
}

// WithNetNS makes the component work in the named network namespace
// /run/netns/NAME, as created by `ip netns add NAME`.
func WithNetNS(name string) Option {
	return WithNetNSPath(filepath.Join("/run/netns", name))
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithConntrackFlush switches the deletion of conntrack entries of dead
// backends on or off (default on). Off is for control runs that show what
// the deletion is for.
func WithConntrackFlush(on bool) Option {
	return func(o *options) { o.flushFlows = on }
}

// netNS is the network namespace a component works in: fd < 0 is the
// namespace of the calling process.
type netNS struct {
	fd    int
	owned *os.File
}

func openNetNS(o options) (netNS, error) {
	if o.nsPath == "" {
		return netNS{fd: o.nsFd}, nil
	}
	f, err := os.Open(o.nsPath)
	if err != nil {
		return netNS{}, fmt.Errorf("opening network namespace: %w", err)
	}
	return netNS{fd: int(f.Fd()), owned: f}, nil
}

func (n netNS) close() error {
	if n.owned != nil {
		return n.owned.Close()
	}
	return nil
}

// do runs fn on an OS thread inside the namespace, with netnsx's thread
// policy (back to the original namespace afterwards, or retired). Sockets
// opened by fn stay in that namespace after the thread moves back.
func (n netNS) do(fn func() error) error {
	if n.fd < 0 {
		return fn()
	}
	return netnsx.Do(netns.NsHandle(n.fd), fn)
}
