package chaos

// What the daemons say about the VIP in their logs: for timelines only
// (the invariants rest on the observer, not on epconsole's word).

import (
	"bufio"
	"encoding/json"
	"os"
	"time"
)

// VIPEvent is a vip-acquired or vip-released event from a daemon's log.
type VIPEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Message string    `json:"message"`
}

// VIPEvents reads the VIP events of subject (the VIP's address) at or
// after since from the daemon log at path.
func VIPEvents(path, subject string, since time.Time) ([]VIPEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []VIPEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e VIPEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if (e.Kind == "vip-acquired" || e.Kind == "vip-released") && e.Subject == subject && !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}
