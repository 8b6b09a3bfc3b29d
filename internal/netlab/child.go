package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/epconsole/epconsole/internal/embedetcd"
)

// The environment of a child: the role to run and its JSON arguments.
const (
	envRole = "EPCONSOLE_NETLAB_CHILD"
	envArgs = "EPCONSOLE_NETLAB_ARGS"
)

// Child roles.
const (
	roleStandin    = "standin"
	roleClient     = "client"
	roleStream     = "stream"
	roleTCPConnect = "tcpconnect"
	roleEtcd       = "etcd"
	roleEtcdStatus = "etcdstatus"
)

// Child events, one JSON object a line on the child's stdout.
const (
	evReady   = "ready"   // a server listens
	evStarted = "started" // a load role has done its first attempt
	evResult  = "result"  // the final result; the child exits after it
)

// defaultStartTimeout bounds waiting for a child's first event when ctx
// has no deadline.
const defaultStartTimeout = 15 * time.Second

// RunChild runs the netlab role this process was started for and exits;
// it returns false at once when the process is not a netlab child. Call it
// first thing in TestMain of every package that uses netlab processes, and
// in main of a binary that builds labs:
//
//	func TestMain(m *testing.M) {
//		netlab.RunChild()
//		os.Exit(m.Run())
//	}
func RunChild() bool {
	role, ok := os.LookupEnv(envRole)
	if !ok {
		return false
	}
	args := os.Getenv(envArgs)
	os.Unsetenv(envRole)
	os.Unsetenv(envArgs)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("role", role, "pid", os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := runRole(ctx, role, []byte(args), &eventWriter{w: os.Stdout}, log)
	stop()
	if err != nil {
		log.Error("netlab child failed", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func runRole(ctx context.Context, role string, args []byte, out *eventWriter, log *slog.Logger) error {
	decode := func(v any) error {
		if err := json.Unmarshal(args, v); err != nil {
			return fmt.Errorf("decoding %s arguments: %w", role, err)
		}
		return nil
	}
	switch role {
	case roleStandin:
		var a standinArgs
		if err := decode(&a); err != nil {
			return err
		}
		return runStandin(ctx, a, out, log)
	case roleClient:
		var o ClientOpts
		if err := decode(&o); err != nil {
			return err
		}
		return runClient(ctx, o, out)
	case roleStream:
		var o StreamOpts
		if err := decode(&o); err != nil {
			return err
		}
		return runStream(ctx, o, out)
	case roleTCPConnect:
		var o TCPConnectOpts
		if err := decode(&o); err != nil {
			return err
		}
		return runTCPConnect(ctx, o, out)
	case roleEtcd:
		var a embedetcd.Member
		if err := decode(&a); err != nil {
			return err
		}
		return runEtcd(ctx, a, out, log)
	case roleEtcdStatus:
		var a etcdStatusArgs
		if err := decode(&a); err != nil {
			return err
		}
		return runEtcdStatus(ctx, a, out)
	}
	return fmt.Errorf("unknown netlab role %q", role)
}

// eventWriter writes events as JSON lines, one writer at a time.
type eventWriter struct {
	mu sync.Mutex
	w  io.Writer
}

type event struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
}

func (e *eventWriter) emit(name string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding %s event: %w", name, err)
	}
	line, err := json.Marshal(event{Event: name, Data: raw})
	if err != nil {
		return fmt.Errorf("encoding %s event: %w", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.w.Write(append(line, '\n'))
	return err
}

// proc is a child process of the lab, seen from the parent.
type proc struct {
	role   string
	host   *Host
	cmd    *exec.Cmd
	stderr *tailBuffer
	seq    int // start order within the lab

	mu      sync.Mutex
	events  map[string]json.RawMessage
	changed chan struct{} // closed and replaced on every event

	outDone chan struct{} // stdout reached EOF
	done    chan struct{} // the process was reaped
	waitErr error         // set before done is closed
}

// startChild re-executes this binary inside the host's namespace to run
// role with args. The process runs until it exits, is killed, or the lab
// closes.
func (h *Host) startChild(role string, args any) (*proc, error) {
	l := h.lab
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	argJSON, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encoding %s arguments: %w", role, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	l.seq++
	logPath := filepath.Join(l.dir, "logs", fmt.Sprintf("%s-%s-%d.log", h.name, role, l.seq))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating child log: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	p := &proc{
		role:    role,
		host:    h,
		stderr:  &tailBuffer{max: 4096},
		events:  map[string]json.RawMessage{},
		changed: make(chan struct{}),
		outDone: make(chan struct{}),
		done:    make(chan struct{}),
	}
	cmd := exec.Command("ip", "netns", "exec", h.ns, exe)
	cmd.Env = append(childEnv(os.Environ()), envRole+"="+role, envArgs+"="+string(argJSON))
	cmd.Stdout = pw
	cmd.Stderr = io.MultiWriter(logf, p.stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	p.cmd = cmd
	// Pdeathsig fires when the OS *thread* that started the child exits,
	// not the process, and Go retires threads (a goroutine that ends still
	// locked takes its thread with it, as netnsx does with a thread that
	// cannot return to its namespace). So the
	// child is started and waited for on a goroutine locked to a thread
	// that lives exactly as long as the child.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		logf.Close()
		p.waitErr = err
		close(p.done)
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
	}()
	err = <-started
	pw.Close()
	if err != nil {
		pr.Close()
		logf.Close()
		return nil, fmt.Errorf("starting %s in %s: %w", role, h.ns, err)
	}
	p.seq = l.seq
	l.procs[p] = struct{}{}
	go p.readEvents(pr)
	return p, nil
}

// childEnv drops netlab variables inherited from a parent that is itself a child.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, envRole+"=") || strings.HasPrefix(kv, envArgs+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *proc) readEvents(r io.ReadCloser) {
	defer close(p.outDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Event == "" {
			continue
		}
		p.mu.Lock()
		if _, seen := p.events[ev.Event]; !seen {
			p.events[ev.Event] = ev.Data
			close(p.changed)
			p.changed = make(chan struct{})
		}
		p.mu.Unlock()
	}
	// Drain so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// waitEvent waits for the named event, the child's end, or ctx.
func (p *proc) waitEvent(ctx context.Context, name string) (json.RawMessage, error) {
	for {
		p.mu.Lock()
		data, ok := p.events[name]
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return data, nil
		}
		select {
		case <-ch:
		case <-p.outDone:
			p.mu.Lock()
			data, ok := p.events[name]
			p.mu.Unlock()
			if ok {
				return data, nil
			}
			return nil, p.exitError(name)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s %s in %s: %w", p.role, name, p.host.ns, ctx.Err())
		}
	}
}

// exitError describes a child that ended before sending an event.
func (p *proc) exitError(want string) error {
	select {
	case <-p.done:
	case <-time.After(killWait):
	}
	status := "still running"
	select {
	case <-p.done:
		status = "exited"
		if p.waitErr != nil {
			status = p.waitErr.Error()
		}
	default:
	}
	return fmt.Errorf("%s in %s ended before %q (%s); stderr: %s", p.role, p.host.ns, want, status, strings.TrimSpace(p.stderr.String()))
}

// signal signals the child's process group.
func (p *proc) signal(sig syscall.Signal) {
	_ = killGroup(p.cmd.Process.Pid, sig)
}

// stop asks the child to end (SIGTERM), then kills it once ctx ends or
// after killWait, and waits until it is reaped (bounded).
func (p *proc) stop(ctx context.Context) error {
	p.signal(syscall.SIGTERM)
	grace := time.NewTimer(killWait)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	return p.kill()
}

// kill SIGKILLs the child's group and waits until it is reaped (bounded).
func (p *proc) kill() error {
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s process %d in %s did not exit after SIGKILL", p.role, p.cmd.Process.Pid, p.host.ns)
	}
}

// startCtx bounds a start-up wait when ctx has no deadline of its own.
func startCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultStartTimeout)
}

// Job is a running load role (client, stream, TCP connect loop) whose
// result T arrives when it ends.
type Job[T any] struct {
	p *proc
}

// Wait waits for the result. When ctx ends first the child is killed and
// ctx's error returned.
func (j *Job[T]) Wait(ctx context.Context) (T, error) {
	var res T
	raw, err := j.p.waitEvent(ctx, evResult)
	if err != nil {
		_ = j.p.kill()
		return res, err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("decoding %s result: %w", j.p.role, err)
	}
	select {
	case <-j.p.done:
	case <-time.After(killWait):
		_ = j.p.kill()
	}
	return res, nil
}

// Stop asks the job to end early (SIGTERM): a client or connect loop
// starts nothing new and lets the attempts in flight finish, a stream ends
// as "stopped"; Wait then returns what it saw.
func (j *Job[T]) Stop() { j.p.signal(syscall.SIGTERM) }

// Kill ends the job at once; Wait then fails.
func (j *Job[T]) Kill() error { return j.p.kill() }

// Pid returns the child's process id.
func (j *Job[T]) Pid() int { return j.p.cmd.Process.Pid }

// startJob starts a load role and waits for its "started" event.
func startJob[T any](ctx context.Context, h *Host, role string, args any) (*Job[T], error) {
	p, err := h.startChild(role, args)
	if err != nil {
		return nil, err
	}
	sctx, cancel := startCtx(ctx)
	defer cancel()
	if _, err := p.waitEvent(sctx, evStarted); err != nil {
		// A child that already reported its result has not failed to start.
		p.mu.Lock()
		_, done := p.events[evResult]
		p.mu.Unlock()
		if !done {
			_ = p.kill()
			return nil, err
		}
	}
	return &Job[T]{p: p}, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
