package status

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
)

// Role is what a client of the status socket may do, decided from its
// peer credentials on every connection.
type Role int

// The roles, each allowing what the one before allows and more.
const (
	// RoleNone: refused.
	RoleNone Role = iota
	// RoleReader reads: the status, the stream, the event history, the
	// console read-only (members of status.socket_group).
	RoleReader
	// RoleOperator also drains, undrains and hands the VIP off (members
	// of status.operator_group).
	RoleOperator
	// RoleAdmin may do everything: root and the daemon's own user.
	RoleAdmin
)

// String names the role as the API and the docs do.
func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// mayAct reports whether r may drain, undrain and hand off.
func (r Role) mayAct() bool { return r >= RoleOperator }

// noGroup is a group that is not configured.
const noGroup = -1

// access is who may use the socket: root and the daemon's user always,
// and the members of the configured groups.
type access struct {
	daemonUID int
	// socketGID and operatorGID are the groups' ids (noGroup: not set);
	// socketGroup and operatorGroup their names as configured, for the
	// messages.
	socketGID, operatorGID     int
	socketGroup, operatorGroup string
}

// role decides what the peer p may do. Membership counts the primary
// group and the supplementary groups alike; a peer whose groups could not
// be read is in none.
func (a access) role(p peer) Role {
	switch {
	case p.uid < 0:
		return RoleNone
	case p.uid == 0 || p.uid == a.daemonUID:
		return RoleAdmin
	case p.err != nil:
		return RoleNone
	case p.member(a.operatorGID):
		return RoleOperator
	case p.member(a.socketGID):
		return RoleReader
	}
	return RoleNone
}

// member reports whether the peer belongs to gid (noGroup: never).
func (p peer) member(gid int) bool {
	if gid == noGroup {
		return false
	}
	return p.gid == gid || slices.Contains(p.groups, gid)
}

// refusal is the 403 message for a peer without a role.
func (a access) refusal(socket string, p peer) string {
	who := describePeer(p)
	switch {
	case a.socketGID == noGroup && a.operatorGID == noGroup:
		return fmt.Sprintf("permission denied: %s may not use the epconsole status socket %s: it is for root only; run as root, or set status.socket_group in config.hcl to let a group read", who, socket)
	case a.operatorGID == noGroup:
		return fmt.Sprintf("permission denied: %s may not use the epconsole status socket %s: it is for root and the group %s (status.socket_group); run as root or join that group", who, socket, a.socketGroup)
	case a.socketGID == noGroup:
		return fmt.Sprintf("permission denied: %s may not use the epconsole status socket %s: it is for root and the group %s (status.operator_group); run as root or join that group", who, socket, a.operatorGroup)
	}
	return fmt.Sprintf("permission denied: %s may not use the epconsole status socket %s: it is for root, the group %s (read) and the group %s (read, drain, undrain, handoff); run as root or join one of them", who, socket, a.socketGroup, a.operatorGroup)
}

// actionRefusal is the 403 message for a reader asking for an action.
func (a access) actionRefusal(action string, p peer) string {
	how := "set status.operator_group in config.hcl to let a group act"
	if a.operatorGID != noGroup {
		how = fmt.Sprintf("join the group %s (status.operator_group)", a.operatorGroup)
	}
	return fmt.Sprintf("permission denied: %s may read the status but not %s: drain, undrain and handoff are for root and the operator group; run as root (e.g. with sudo) or %s", describePeer(p), action, how)
}

// describePeer names a peer in an error message.
func describePeer(p peer) string {
	if p.err != nil || p.uid < 0 {
		return "a client whose credentials cannot be read"
	}
	if u, err := user.LookupId(strconv.Itoa(p.uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, p.uid)
	}
	return fmt.Sprintf("uid %d", p.uid)
}

// lookupGroup resolves a configured group: a name from the group database
// or a numeric gid. "" is noGroup.
func lookupGroup(name string) (int, error) {
	if name == "" {
		return noGroup, nil
	}
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return noGroup, fmt.Errorf("no group %q on this host (create it with groupadd %s, or give a numeric gid): %w", name, name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return noGroup, fmt.Errorf("group %q has the gid %q, not a number", name, g.Gid)
	}
	return gid, nil
}
