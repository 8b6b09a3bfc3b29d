package status

import "time"

// LatencyBuckets are the upper bounds of a Histogram's buckets: from 1 ms
// (an nftables transaction of a small ruleset) to 10 s (a kernel that
// stalls). Metrics export them as Prometheus histogram buckets (le, in
// seconds).
var LatencyBuckets = [latencyBucketCount]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

const latencyBucketCount = 13

// Histogram counts durations in the LatencyBuckets. It is a plain value
// (no slice, no map), so copying Counters copies it.
type Histogram struct {
	// Count is how many durations were observed, Sum their total.
	Count uint64        `json:"count"`
	Sum   time.Duration `json:"sum_ns"`
	// Buckets[i] counts the durations above LatencyBuckets[i-1] and at
	// most LatencyBuckets[i]; durations above the last bound are counted
	// only in Count.
	Buckets [latencyBucketCount]uint64 `json:"buckets"`
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	h.Count++
	h.Sum += d
	for i, le := range LatencyBuckets {
		if d <= le {
			h.Buckets[i]++
			return
		}
	}
}

// Cumulative returns the Prometheus form of the buckets: for each bound
// in seconds, how many durations were at most that long.
func (h Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(LatencyBuckets))
	var n uint64
	for i, le := range LatencyBuckets {
		n += h.Buckets[i]
		out[le.Seconds()] = n
	}
	return out
}
