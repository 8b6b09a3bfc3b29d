package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/epconsole/epconsole/cluster"
	"github.com/epconsole/epconsole/internal/config"
)

// DrainFile is the file in state_dir that keeps the operator's drain set.
const DrainFile = "drained.json"

// DrainSet is the cluster-wide set of backends an operator drained. Every
// node publishes the set it holds with its generation (cluster.Meta
// Drained, DrainGen) and adopts a newer one it hears of: the higher
// generation, then the greater set (so two drains made at once on two
// nodes still converge), so the last drain or undrain wins everywhere.
// It is kept in state_dir/drained.json, so it survives a restart of the
// node and, being on every peer, a failover.
type DrainSet struct {
	Generation uint64   `json:"generation"`
	Backends   []string `json:"backends"`
}

// key is the set as published: names comma-joined, sorted.
func (s DrainSet) key() string { return strings.Join(s.Backends, ",") }

// newer reports whether s is newer than o.
func (s DrainSet) newer(o DrainSet) bool {
	if s.Generation != o.Generation {
		return s.Generation > o.Generation
	}
	return s.key() > o.key()
}

// Has reports whether backend is drained.
func (s DrainSet) Has(backend string) bool { return slices.Contains(s.Backends, backend) }

// with returns the set with backend added (drain) or removed (undrain),
// one generation later than gen.
func (s DrainSet) with(backend string, drain bool, gen uint64) DrainSet {
	out := DrainSet{Generation: gen + 1}
	for _, b := range s.Backends {
		if b != backend {
			out.Backends = append(out.Backends, b)
		}
	}
	if drain {
		out.Backends = append(out.Backends, backend)
	}
	slices.Sort(out.Backends)
	return out
}

// parseDrain reads a published set.
func parseDrain(list string, gen uint64) DrainSet {
	s := DrainSet{Generation: gen}
	if list != "" {
		s.Backends = strings.Split(list, ",")
		slices.Sort(s.Backends)
	}
	return s
}

// adoptDrain returns the newest drain set among mine and the ones the
// live configured members publish (a pure function of the view).
func adoptDrain(mine DrainSet, v cluster.View) DrainSet {
	best := mine
	for _, m := range v.Members {
		if !m.Configured || !m.Fresh || m.MetaErr != "" || m.Meta.Name != m.Name {
			continue
		}
		if s := parseDrain(m.Meta.Drained, m.Meta.DrainGen); s.newer(best) {
			best = s
		}
	}
	return best
}

// maxDrainGen is the highest drain generation known (mine or published).
func maxDrainGen(mine DrainSet, v cluster.View) uint64 {
	g := mine.Generation
	for _, m := range v.Members {
		if m.Configured { // another member's generation is no input
			g = max(g, m.Meta.DrainGen)
		}
	}
	return g
}

// drainMap is the set as a map, restricted to backends cfg knows.
func drainMap(s DrainSet, cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, b := range cfg.Backends {
		if s.Has(b.Name) {
			out[b.Name] = true
		}
	}
	return out
}

// loadDrain reads dir/drained.json; a missing file is the empty set.
func loadDrain(dir string) (DrainSet, error) {
	var s DrainSet
	b, err := os.ReadFile(filepath.Join(dir, DrainFile))
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading the drain set: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return DrainSet{}, fmt.Errorf("%s: %w", filepath.Join(dir, DrainFile), err)
	}
	slices.Sort(s.Backends)
	return s, nil
}

// saveDrain writes dir/drained.json atomically (a temporary file renamed).
func saveDrain(dir string, s DrainSet) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state_dir: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the drain set: %w", err)
	}
	tmp, err := os.CreateTemp(dir, DrainFile+".*")
	if err != nil {
		return fmt.Errorf("writing the drain set: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := firstErr(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing the drain set: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, DrainFile)); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing the drain set: %w", err)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
