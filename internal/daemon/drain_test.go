package daemon

import (
	"slices"
	"testing"

	"github.com/epconsole/epconsole/cluster"
)

func member(name string, fresh bool, drained string, gen uint64) cluster.Member {
	return cluster.Member{Name: name, Configured: true, Fresh: fresh,
		Meta: cluster.Meta{Name: name, Drained: drained, DrainGen: gen}}
}

func TestAdoptDrain(t *testing.T) {
	tests := []struct {
		desc    string
		mine    DrainSet
		members []cluster.Member
		want    DrainSet
	}{
		{desc: "nothing anywhere", want: DrainSet{}},
		{desc: "mine is newest", mine: DrainSet{2, []string{"cp1"}},
			members: []cluster.Member{member("lb2", true, "", 1)}, want: DrainSet{2, []string{"cp1"}}},
		{desc: "a peer's newer drain is adopted", mine: DrainSet{1, []string{"cp1"}},
			members: []cluster.Member{member("lb2", true, "cp1,cp2", 2)}, want: DrainSet{2, []string{"cp1", "cp2"}}},
		{desc: "a peer's newer undrain is adopted", mine: DrainSet{1, []string{"cp1"}},
			members: []cluster.Member{member("lb2", true, "", 2)}, want: DrainSet{Generation: 2}},
		{desc: "a stale (not fresh) peer is not followed", mine: DrainSet{1, nil},
			members: []cluster.Member{member("lb2", false, "cp3", 9)}, want: DrainSet{1, nil}},
		{desc: "same generation: the greater set wins on every node", mine: DrainSet{3, []string{"cp1"}},
			members: []cluster.Member{member("lb2", true, "cp2", 3)}, want: DrainSet{3, []string{"cp2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := adoptDrain(tc.mine, cluster.View{Members: tc.members})
			if got.Generation != tc.want.Generation || !slices.Equal(got.Backends, tc.want.Backends) {
				t.Errorf("adoptDrain = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDrainSetWith(t *testing.T) {
	s := DrainSet{}.with("cp2", true, 4).with("cp1", true, 5)
	if s.Generation != 6 || s.key() != "cp1,cp2" {
		t.Fatalf("after two drains: %+v", s)
	}
	s = s.with("cp2", false, s.Generation)
	if s.Generation != 7 || s.key() != "cp1" || !s.Has("cp1") || s.Has("cp2") {
		t.Fatalf("after undrain: %+v", s)
	}
}

func TestDrainFileRoundTrip(t *testing.T) {
	dir := t.TempDir() + "/state"
	s, err := loadDrain(dir)
	if err != nil || s.Generation != 0 || len(s.Backends) != 0 {
		t.Fatalf("missing file: %+v, %v", s, err)
	}
	want := DrainSet{Generation: 3, Backends: []string{"cp1", "cp3"}}
	if err := saveDrain(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadDrain(dir)
	if err != nil || got.Generation != 3 || !slices.Equal(got.Backends, want.Backends) {
		t.Fatalf("loadDrain = %+v, %v; want %+v", got, err, want)
	}
}
