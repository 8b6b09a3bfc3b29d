package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdOptions say how to reach etcd.
type EtcdOptions struct {
	// Endpoints are client URLs to start from (https://host:2379); the
	// member list supplies the rest.
	Endpoints []string
	// TLS holds the client certificate and the etcd CA (nil: plain HTTP).
	TLS *tls.Config
	// Timeout bounds each request (member list, one member's status, the
	// alarm list); default 2s.
	Timeout time.Duration
}

// EtcdMember is one member as the member list and its own status see it.
type EtcdMember struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Learner    bool     `json:"learner"`
	// Endpoint is the client URL the status was asked from.
	Endpoint string `json:"endpoint,omitempty"`
	// Reachable: the member answered a status request.
	Reachable bool `json:"reachable"`
	// Leader is the ID of the leader this member believes in ("" none).
	Leader           string   `json:"leader,omitempty"`
	IsLeader         bool     `json:"is_leader"`
	RaftTerm         uint64   `json:"raft_term,omitempty"`
	RaftIndex        uint64   `json:"raft_index,omitempty"`
	RaftAppliedIndex uint64   `json:"raft_applied_index,omitempty"`
	DBSize           int64    `json:"db_size_bytes,omitempty"`
	DBSizeInUse      int64    `json:"db_size_in_use_bytes,omitempty"`
	DBSizeQuota      int64    `json:"db_size_quota_bytes,omitempty"`
	Version          string   `json:"version,omitempty"`
	Errors           []string `json:"errors,omitempty"`
	// Error is why the status request failed.
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// Healthy reports whether the member counts toward quorum health: a
// voting member that answered and knows a leader.
func (m EtcdMember) Healthy() bool { return !m.Learner && m.Reachable && m.Leader != "" }

// EtcdAlarm is a raised cluster alarm.
type EtcdAlarm struct {
	MemberID string `json:"member_id"`
	Member   string `json:"member,omitempty"`
	// Alarm is "NOSPACE" or "CORRUPT".
	Alarm string `json:"alarm"`
}

// EtcdVerdict is the quorum arithmetic.
type EtcdVerdict struct {
	// Members counts voting members (learners excluded).
	Members  int `json:"members"`
	Learners int `json:"learners"`
	// Quorum = floor(Members/2)+1.
	Quorum  int `json:"quorum"`
	Healthy int `json:"healthy"`
	// Tolerance is how many more members may fail before quorum is lost
	// (0 when it already is).
	Tolerance int `json:"tolerance"`
	// Leader names the leader the healthy members agree on ("" none or split).
	Leader   string   `json:"leader,omitempty"`
	Severity Severity `json:"severity"`
}

// EtcdReport is the etcd check's result.
type EtcdReport struct {
	// ListError is set when no endpoint answered the member list.
	ListError  string       `json:"list_error,omitempty"`
	Members    []EtcdMember `json:"members"`
	Alarms     []EtcdAlarm  `json:"alarms"`
	AlarmError string       `json:"alarm_error,omitempty"`
	Verdict    EtcdVerdict  `json:"verdict"`
	Findings   []Finding    `json:"-"`
}

// Etcd lists the members (serializable, so it works without quorum),
// asks every member for its status and the cluster for its alarms, each
// with its own timeout, and judges quorum with EtcdQuorum.
func Etcd(ctx context.Context, o EtcdOptions) EtcdReport {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	r := EtcdReport{Members: []EtcdMember{}, Alarms: []EtcdAlarm{}}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		TLS:         o.TLS,
		DialTimeout: o.Timeout,
		Logger:      zap.NewNop(),
		// A dead endpoint must not eat the budget: fail over fast.
		BackoffWaitBetween: 50 * time.Millisecond,
	})
	if err != nil {
		r.ListError = err.Error()
		r.Verdict, r.Findings = EtcdQuorum(r)
		return r
	}
	defer cli.Close()

	lctx, cancel := context.WithTimeout(ctx, o.Timeout)
	ml, err := cli.MemberList(lctx, clientv3.WithSerializable())
	cancel()
	if err != nil {
		r.ListError = fmt.Sprintf("member list from %s: %v", strings.Join(o.Endpoints, ","), err)
		r.Verdict, r.Findings = EtcdQuorum(r)
		return r
	}
	names := map[uint64]string{}
	slices.SortStableFunc(ml.Members, func(a, b *etcdserverpb.Member) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range ml.Members {
		names[m.ID] = m.Name
		r.Members = append(r.Members, EtcdMember{
			ID: memberID(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner,
		})
	}

	var wg sync.WaitGroup
	for i := range r.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			memberStatus(ctx, cli, &r.Members[i], o.Timeout)
		}()
	}
	wg.Wait()
	// The alarm list is a raft request: without a leader it can only time
	// out, so ask only when some member knows one.
	if !slices.ContainsFunc(r.Members, func(m EtcdMember) bool { return m.Healthy() }) {
		r.AlarmError = "not listed: no member knows a leader, and listing alarms needs one"
	} else {
		actx, cancel := context.WithTimeout(ctx, o.Timeout)
		al, err := cli.AlarmList(actx)
		cancel()
		if err != nil {
			r.AlarmError = err.Error()
		} else {
			for _, a := range al.Alarms {
				r.Alarms = append(r.Alarms, EtcdAlarm{MemberID: memberID(a.MemberID), Member: names[a.MemberID], Alarm: a.Alarm.String()})
			}
		}
	}
	r.Verdict, r.Findings = EtcdQuorum(r)
	return r
}

func memberStatus(ctx context.Context, cli *clientv3.Client, m *EtcdMember, timeout time.Duration) {
	if len(m.ClientURLs) == 0 {
		m.Error = "member has not started (no client URLs)"
		return
	}
	var errs []string
	for _, ep := range m.ClientURLs {
		start := time.Now()
		m.Endpoint = ep
		// A stopped member refuses at once, but gRPC would keep redialing
		// until the deadline: try a plain connect first.
		if err := reachable(ctx, ep, timeout); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		st, err := cli.Status(sctx, ep)
		cancel()
		m.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			errs = append(errs, ep+": "+err.Error())
			continue
		}
		m.Reachable = true
		if st.Leader != 0 {
			m.Leader = memberID(st.Leader)
		}
		m.IsLeader = st.Leader != 0 && st.Header != nil && st.Leader == st.Header.MemberId
		m.RaftTerm, m.RaftIndex, m.RaftAppliedIndex = st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex
		m.DBSize, m.DBSizeInUse, m.DBSizeQuota = st.DbSize, st.DbSizeInUse, st.DbSizeQuota
		m.Version = st.Version
		for _, e := range st.Errors {
			// etcd prints alarms in protobuf text form, whose spacing is
			// deliberately unstable: fold it so output and goldens are stable.
			m.Errors = append(m.Errors, strings.Join(strings.Fields(e), " "))
		}
		return
	}
	m.Error = strings.Join(errs, "; ")
}

// reachable makes (and closes) a TCP connection to a client URL's host.
func reachable(ctx context.Context, endpoint string, timeout time.Duration) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad client URL %q", endpoint)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "2379")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}

func memberID(id uint64) string { return strconv.FormatUint(id, 16) }

// EtcdQuorum judges a report's members and alarms: quorum =
// floor(N/2)+1 of the N voting members, healthy = voting members that
// answered and know a leader, tolerance = healthy - quorum. Critical when
// quorum is lost, no leader is known or an alarm is raised; warning for an
// unhealthy member, an even member count, disagreeing leaders or a
// database near its quota. It is a pure function.
func EtcdQuorum(r EtcdReport) (EtcdVerdict, []Finding) {
	var fs []Finding
	add := func(sev Severity, subject, code, msg, detail string, fixes ...Fix) {
		fs = append(fs, Finding{Check: CheckEtcd, Severity: sev, Subject: subject, Code: code, Message: msg, Detail: detail, Fixes: fixes})
	}
	var v EtcdVerdict
	if r.ListError != "" {
		add(Critical, "", "etcd-unreachable", "no etcd endpoint answered the member list", r.ListError,
			Fix{Text: "check etcd.endpoints and the client certificate in config.hcl; on the etcd nodes: systemctl status etcd, or crictl ps -a --name etcd (kubeadm stacked etcd)"})
		v.Severity = Summarize(fs).Severity
		return v, fs
	}

	leaders := map[string]int{}
	names := map[string]string{}
	for _, m := range r.Members {
		names[m.ID] = m.Name
	}
	for _, m := range r.Members {
		if m.Learner {
			v.Learners++
			continue
		}
		v.Members++
		if m.Healthy() {
			v.Healthy++
			leaders[m.Leader]++
		}
	}
	v.Quorum = v.Members/2 + 1
	if v.Healthy >= v.Quorum {
		v.Tolerance = v.Healthy - v.Quorum
	}
	if len(leaders) == 1 {
		for id := range leaders {
			v.Leader = names[id]
			if v.Leader == "" {
				v.Leader = id
			}
		}
	}

	// Members.
	for _, m := range r.Members {
		subject := m.Name
		if subject == "" {
			subject = m.ID
		}
		switch {
		case !m.Reachable:
			add(Warning, subject, "member-unreachable", "etcd member does not answer", m.Error, memberFixes(subject)...)
		case m.Leader == "":
			add(Warning, subject, "member-no-leader", "etcd member knows no leader", strings.Join(m.Errors, "; "), memberFixes(subject)...)
		}
		if m.Reachable && m.DBSizeQuota > 0 && m.DBSize*10 >= m.DBSizeQuota*8 {
			add(Warning, subject, "db-near-quota",
				fmt.Sprintf("database is %d%% of its quota (%d of %d bytes)", m.DBSize*100/m.DBSizeQuota, m.DBSize, m.DBSizeQuota), "",
				Fix{Text: "etcdctl compact $(etcdctl endpoint status -w json | jq '.[0].Status.header.revision') && etcdctl defrag --endpoints " + m.Endpoint})
		}
	}

	// Quorum and leader.
	reachable, knowLeader := 0, 0
	for _, m := range r.Members {
		if !m.Learner && m.Reachable {
			reachable++
			if m.Leader != "" {
				knowLeader++
			}
		}
	}
	if v.Members == 0 {
		add(Critical, "", "no-members", "the member list is empty", "")
	}
	if v.Members > 0 && v.Healthy < v.Quorum {
		add(Critical, "", "quorum-lost",
			fmt.Sprintf("quorum lost: %d of %d members healthy, quorum needs %d; etcd refuses writes", v.Healthy, v.Members, v.Quorum), "",
			Fix{Text: fmt.Sprintf("bring back %d member(s); if they are gone for good, restore from a snapshot (etcdutl snapshot restore) as a new cluster", v.Quorum-v.Healthy)})
	}
	switch {
	case reachable > 0 && knowLeader == 0:
		add(Critical, "", "no-leader", fmt.Sprintf("none of the %d reachable members knows a leader", reachable), "")
	case len(leaders) > 1:
		var parts []string
		for id, n := range leaders {
			name := names[id]
			if name == "" {
				name = id
			}
			parts = append(parts, fmt.Sprintf("%s (%d)", name, n))
		}
		slices.Sort(parts)
		add(Warning, "", "leader-disagreement", "members disagree on the leader: "+strings.Join(parts, ", "), "")
	case v.Healthy >= v.Quorum && v.Tolerance == 0 && v.Healthy < v.Members:
		add(Warning, "", "no-tolerance",
			fmt.Sprintf("%d of %d members healthy: one more failure loses quorum", v.Healthy, v.Members), "")
	}
	if v.Members > 0 && v.Members%2 == 0 {
		add(Warning, "", "even-members",
			fmt.Sprintf("%d voting members tolerate no more failures than %d would (quorum %d)", v.Members, v.Members-1, v.Quorum), "",
			Fix{Text: fmt.Sprintf("add a member (etcdctl member add) or remove one (etcdctl member remove) for an odd count of %d or %d", v.Members+1, v.Members-1)})
	}

	// Alarms.
	for _, a := range r.Alarms {
		subject := a.Member
		if subject == "" {
			subject = a.MemberID
		}
		switch a.Alarm {
		case "NOSPACE":
			add(Critical, subject, "alarm-nospace", "NOSPACE alarm raised: etcd accepts only reads and deletes", "",
				Fix{Text: "free space: etcdctl compact <current revision>; etcdctl defrag --cluster; then etcdctl alarm disarm (raise --quota-backend-bytes if the data simply grew)"})
		case "CORRUPT":
			add(Critical, subject, "alarm-corrupt", "CORRUPT alarm raised: a member's data diverged", "",
				Fix{Text: fmt.Sprintf("remove %s (etcdctl member remove), wipe its data dir, and add it back (etcdctl member add) to resync from the leader", subject)})
		default:
			add(Critical, subject, "alarm", a.Alarm+" alarm raised", "")
		}
	}
	if r.AlarmError != "" && v.Healthy >= v.Quorum && v.Members > 0 {
		add(Warning, "", "alarms-unknown", "could not list alarms", r.AlarmError)
	}
	v.Severity = Summarize(fs).Severity
	return v, fs
}

func memberFixes(name string) []Fix {
	return []Fix{
		{Setup: SetupKubeadm, Text: fmt.Sprintf("on %s: crictl ps -a --name etcd and crictl logs <id>; the static pod is /etc/kubernetes/manifests/etcd.yaml", name)},
		{Setup: SetupAny, Text: fmt.Sprintf("external etcd on %s: systemctl status etcd; journalctl -u etcd", name)},
	}
}
