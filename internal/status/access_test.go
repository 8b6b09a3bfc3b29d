package status

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/epconsole/epconsole/internal/testenv"
)

// Groups of the role tests: numeric gids no host database needs to know.
const (
	testReadGID = 4242001
	testOpGID   = 4242002
	testOtherID = 4242003
)

// TestRoleDecision is the decision table: who may read, who may act.
func TestRoleDecision(t *testing.T) {
	both := access{daemonUID: 990, socketGID: testReadGID, operatorGID: testOpGID}
	none := access{daemonUID: 990, socketGID: noGroup, operatorGID: noGroup}
	readOnly := access{daemonUID: 990, socketGID: testReadGID, operatorGID: noGroup}
	cases := []struct {
		desc string
		acc  access
		p    peer
		want Role
	}{
		{"root", none, peer{uid: 0, gid: 0}, RoleAdmin},
		{"the daemon's own user", none, peer{uid: 990, gid: 990}, RoleAdmin},
		{"a user, no groups configured", none, peer{uid: 1000, gid: testReadGID, groups: []int{testOpGID}}, RoleNone},
		{"socket group as a supplementary group", both, peer{uid: 1000, gid: 1000, groups: []int{27, testReadGID}}, RoleReader},
		{"socket group as the primary group", both, peer{uid: 1000, gid: testReadGID}, RoleReader},
		{"operator group as a supplementary group", both, peer{uid: 1000, gid: 1000, groups: []int{testReadGID, testOpGID}}, RoleOperator},
		{"operator group as the primary group", both, peer{uid: 1000, gid: testOpGID}, RoleOperator},
		{"operator group alone", both, peer{uid: 1000, gid: 1000, groups: []int{testOpGID}}, RoleOperator},
		{"neither group", both, peer{uid: 1000, gid: 1000, groups: []int{testOtherID}}, RoleNone},
		{"no operator group configured", readOnly, peer{uid: 1000, gid: 1000, groups: []int{testReadGID, testOpGID}}, RoleReader},
		{"unreadable credentials", both, peer{uid: -1, err: errors.New("SO_PEERCRED: bad")}, RoleNone},
		{"root with unreadable groups", both, peer{uid: 0, err: errors.New("no groups")}, RoleAdmin},
		{"a member whose groups could not be read", both, peer{uid: 1000, gid: testReadGID, err: errors.New("no groups")}, RoleNone},
		{"a group id of -1 never matches", access{daemonUID: 990, socketGID: noGroup, operatorGID: noGroup}, peer{uid: 1000, gid: -1}, RoleNone},
	}
	for _, tc := range cases {
		if got := tc.acc.role(tc.p); got != tc.want {
			t.Errorf("%s: role = %v, want %v", tc.desc, got, tc.want)
		}
	}
	for r, want := range map[Role]bool{RoleNone: false, RoleReader: false, RoleOperator: true, RoleAdmin: true} {
		if r.mayAct() != want {
			t.Errorf("%v.mayAct() = %v, want %v", r, r.mayAct(), want)
		}
	}
}

// TestAccessRefusalMessages: each refusal says who may, and how to get there.
func TestAccessRefusalMessages(t *testing.T) {
	p := peer{uid: 4242999, gid: 4242999}
	cases := []struct {
		acc  access
		want []string
	}{
		{access{socketGID: noGroup, operatorGID: noGroup}, []string{"uid 4242999", "root only", "status.socket_group"}},
		{access{socketGID: 1, operatorGID: noGroup, socketGroup: "epconsole"}, []string{"the group epconsole (status.socket_group)", "join that group"}},
		{access{socketGID: noGroup, operatorGID: 2, operatorGroup: "ops"}, []string{"the group ops (status.operator_group)"}},
		{access{socketGID: 1, operatorGID: 2, socketGroup: "epconsole", operatorGroup: "ops"}, []string{"epconsole (read)", "ops (read, drain, undrain, handoff)"}},
	}
	for _, tc := range cases {
		msg := tc.acc.refusal("/run/epconsole/status.sock", p)
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("refusal %q lacks %q", msg, w)
			}
		}
	}
	msg := access{operatorGID: 2, operatorGroup: "ops"}.actionRefusal("drain", p)
	if !strings.Contains(msg, "may read the status but not drain") || !strings.Contains(msg, "join the group ops (status.operator_group)") {
		t.Errorf("action refusal = %q", msg)
	}
}

func TestAccessGroupsLine(t *testing.T) {
	got, err := parseGroupsLine("Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 27 4242001 \nNgid:\t0\n")
	if err != nil || !reflect.DeepEqual(got, []int{4, 27, 4242001}) {
		t.Errorf("parseGroupsLine = %v, %v", got, err)
	}
	if got, err := parseGroupsLine("Groups:\t\n"); err != nil || len(got) != 0 {
		t.Errorf("empty Groups: = %v, %v", got, err)
	}
	if _, err := parseGroupsLine("Uid: 0\n"); err == nil {
		t.Error("no Groups: line: want an error")
	}
	// This process's own line parses and holds what Getgroups says.
	own, err := procGroups(os.Getpid())
	want, _ := syscall.Getgroups()
	if err != nil || len(own) != len(want) {
		t.Errorf("procGroups(self) = %v, %v; Getgroups = %v", own, err, want)
	}
}

func TestAccessLookupGroup(t *testing.T) {
	if g, err := lookupGroup(""); g != noGroup || err != nil {
		t.Errorf(`lookupGroup("") = %d, %v`, g, err)
	}
	if g, err := lookupGroup("4242001"); g != 4242001 || err != nil {
		t.Errorf(`lookupGroup("4242001") = %d, %v`, g, err)
	}
	if g, err := lookupGroup("root"); g != 0 || err != nil {
		t.Errorf(`lookupGroup("root") = %d, %v`, g, err)
	}
	_, err := lookupGroup("no-such-group-epc")
	if err == nil || !strings.Contains(err.Error(), "groupadd no-such-group-epc") {
		t.Errorf("unknown group: err = %v, want one saying how to create it", err)
	}
}

// TestSocketGroupMode: with a socket group the socket is 0660 and that
// group's; with only an operator group, the operator group's; an unknown
// group leaves the socket root's (0600) and is logged.
func TestSocketGroupMode(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root to give the socket a group it is not in")
	}
	cases := []struct {
		desc, socketGroup, opGroup string
		mode                       os.FileMode
		gid                        int
		log                        string
	}{
		{"no groups", "", "", 0o600, 0, ""},
		{"socket group", "4242001", "4242002", 0o660, testReadGID, ""},
		{"operator group only", "", "4242002", 0o660, testOpGID, ""},
		{"unknown group", "no-such-group-epc", "", 0o600, 0, "status.socket_group left out"},
	}
	for _, tc := range cases {
		sock := socketPath(t)
		var logs lockedBuffer
		startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(0)),
			SocketGroup: tc.socketGroup, OperatorGroup: tc.opGroup, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != tc.mode || int(st.Gid) != tc.gid {
			t.Errorf("%s: socket mode %v group %d, want %v group %d", tc.desc, fi.Mode().Perm(), st.Gid, tc.mode, tc.gid)
		}
		if !strings.Contains(logs.String(), tc.log) {
			t.Errorf("%s: log lacks %q: %s", tc.desc, tc.log, logs.String())
		}
	}
}

// childRunner copies the test binary where another user can run it and
// returns a function that runs it as a status client (see runChild) with
// cred, doing do.
func childRunner(t *testing.T) (base string, run func(cred *syscall.Credential, sock, do string) (int, string)) {
	t.Helper()
	base = t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "status.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, func(cred *syscall.Credential, sock, do string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), childEnv+"="+sock, childDoEnv+"="+do)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running the child: %v", err)
		}
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
	}
}

// TestSocketRoles runs real clients as other users over a real socket:
// a member of the socket group reads (status, events) but may not drain;
// a member of the operator group drains; one in neither group is refused
// by the file mode, and with the mode opened up by the peer-credential
// check; root does everything. The control: the same reader with no
// groups configured is refused.
func TestSocketRoles(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root to run children as other users")
	}
	base, run := childRunner(t)
	sock := filepath.Join(base, "run", "status.sock")
	acts := &recordingActions{}
	var logs lockedBuffer
	startServer(t, ServerOptions{Socket: sock, Source: NewPublisher(sampleSnapshot(3)), Actions: acts,
		History:     &memHistory{evs: []Event{{Time: time.Now(), Kind: "started", Message: "x"}}},
		SocketGroup: "4242001", OperatorGroup: "4242002", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

	reader := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{testReadGID}}
	readerPrimary := &syscall.Credential{Uid: 65534, Gid: testReadGID}
	operator := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{testReadGID, testOpGID}}
	operatorPrimary := &syscall.Credential{Uid: 65534, Gid: testOpGID, Groups: []uint32{testReadGID}}
	operatorOnly := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{testOpGID}}
	stranger := &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{testOtherID}}

	cases := []struct {
		desc string
		cred *syscall.Credential
		do   string
		code int
		want string
	}{
		{"root: health", nil, "health", childOK, "role=admin actions=true uid=0"},
		{"root: drain", nil, "drain", childOK, "drained uid=0"},
		{"reader: health", reader, "health", childOK, "role=reader actions=false uid=65534"},
		{"reader: status", reader, "status", childOK, "node=lb1 uid=65534"},
		{"reader (primary group): status", readerPrimary, "status", childOK, "node=lb1 uid=65534"},
		{"reader: events", reader, "events", childOK, "events=1 uid=65534"},
		{"reader: drain", reader, "drain", childPermission, "may read the status but not drain"},
		{"operator: health", operator, "health", childOK, "role=operator actions=true uid=65534"},
		{"operator: drain", operator, "drain", childOK, "drained uid=65534"},
		{"operator (primary group): drain", operatorPrimary, "drain", childOK, "drained uid=65534"},
		{"operator outside the socket's group: the file mode refuses", operatorOnly, "drain", childPermission, "member of the socket's group"},
		{"stranger: the file mode refuses", stranger, "status", childPermission, "member of the socket's group"},
	}
	for _, tc := range cases {
		code, out := run(tc.cred, sock, tc.do)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, %q; want exit %d with %q", tc.desc, code, out, tc.code, tc.want)
		}
	}
	if want := []string{"drain cp1", "drain cp1", "drain cp1"}; !reflect.DeepEqual(acts.calls, want) {
		t.Errorf("actions done = %q, want %q (root, operator, operator by primary group)", acts.calls, want)
	}
	if !strings.Contains(logs.String(), `"msg":"status action refused"`) {
		t.Errorf("the refused drain was not logged: %s", logs.String())
	}

	// Open the mode: the peer-credential check still refuses the stranger
	// and still lets the operator outside the socket group act.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	if code, out := run(stranger, sock, "status"); code != childPermission || !strings.Contains(out, "it is for root, the group 4242001 (read) and the group 4242002") {
		t.Errorf("stranger, mode 0666: exit %d, %q; want refused by peer credentials", code, out)
	}
	if code, out := run(operatorOnly, sock, "drain"); code != childOK {
		t.Errorf("operator outside the socket group, mode 0666: exit %d, %q; want drained", code, out)
	}

	// Control: no groups configured, mode opened: the reader is refused.
	sock2 := filepath.Join(base, "run2", "status.sock")
	startServer(t, ServerOptions{Socket: sock2, Source: NewPublisher(sampleSnapshot(3)), Actions: acts})
	if err := os.Chmod(sock2, 0o666); err != nil {
		t.Fatal(err)
	}
	if code, out := run(reader, sock2, "status"); code != childPermission || !strings.Contains(out, "root only") {
		t.Errorf("reader, no groups configured: exit %d, %q; want refused", code, out)
	}
}
