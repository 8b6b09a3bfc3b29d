package status

import (
	"errors"
	"fmt"
)

// Errors that callers tell apart with errors.Is. The error text itself is
// always a whole sentence for the operator.
var (
	// ErrNoDaemon: nothing answers on the status socket.
	ErrNoDaemon = errors.New("no epconsole daemon")
	// ErrPermission: the socket is root's (or the daemon's user's) only.
	ErrPermission = errors.New("permission denied")
	// ErrDaemonStopping: the daemon closed the stream because it stops.
	ErrDaemonStopping = errors.New("daemon stopping")
	// ErrNotFound: an action names a backend or peer the daemon does not
	// know (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: an action cannot be done in the current state, e.g. a
	// handoff to a peer that is down (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrUnsupported: the daemon offers no actions (HTTP 501).
	ErrUnsupported = errors.New("not supported")
)

// kindError is an operator-readable message that also matches a sentinel.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }
func (e *kindError) Unwrap() error        { return e.cause }

// NotFoundf returns an error with the formatted message that matches
// ErrNotFound; Actions implementations return it for an unknown backend or
// peer, and the server answers 404.
func NotFoundf(format string, args ...any) error {
	return &kindError{kind: ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

// Conflictf returns an error with the formatted message that matches
// ErrConflict; the server answers 409.
func Conflictf(format string, args ...any) error {
	return &kindError{kind: ErrConflict, msg: fmt.Sprintf(format, args...)}
}
