package connsync

import "github.com/epconsole/epconsole/dataplane"

// dumpChunk is how many entries of a full dump go with each batch round,
// after the changes followed live: at 50,000 flows a dump takes some
// twenty-five rounds, and a new flow's entry waits for one chunk at most,
// not for the whole dump.
const dumpChunk = 2 * syncBatchMax

// dumpQueue is a full dump's entries that have not gone to the peer yet.
// A change followed live for a flow still in it supersedes the dump's
// copy (which is then skipped): sent after the change, the older copy
// would take the peer's entry back to an earlier state, or bring back a
// flow that was destroyed. The owner's peerStream lock guards it.
type dumpQueue struct {
	entries []stamped
	gone    []bool
	at      map[flowKey]int
	head    int
}

// reset replaces the queue with entries, less those skip reports (a
// change of the flow waits already, newer than the dump).
func (q *dumpQueue) reset(entries []dataplane.SyncEntry, skip func(flowKey) bool) {
	q.entries = make([]stamped, 0, len(entries))
	q.at = make(map[flowKey]int, len(entries))
	q.head = 0
	for _, e := range entries {
		k := keyOf(e)
		if skip(k) {
			continue
		}
		if i, dup := q.at[k]; dup {
			q.entries[i].e = e
			continue
		}
		q.at[k] = len(q.entries)
		q.entries = append(q.entries, stamped{e: e}) // no time: not a lag
	}
	q.gone = make([]bool, len(q.entries))
}

// supersede drops the dump's copy of flow k if it has not gone yet.
func (q *dumpQueue) supersede(k flowKey) {
	if i, ok := q.at[k]; ok {
		q.gone[i] = true
		delete(q.at, k)
	}
}

// left is how many entries wait (superseded ones included).
func (q *dumpQueue) left() int { return len(q.entries) - q.head }

// next appends up to n waiting entries to out and returns it; an emptied
// queue lets its memory go.
func (q *dumpQueue) next(out []stamped, n int) []stamped {
	for ; n > 0 && q.head < len(q.entries); q.head++ {
		if q.gone[q.head] {
			continue
		}
		e := q.entries[q.head]
		delete(q.at, keyOf(e.e))
		out = append(out, e)
		n--
	}
	if q.head == len(q.entries) && q.entries != nil {
		*q = dumpQueue{}
	}
	return out
}
