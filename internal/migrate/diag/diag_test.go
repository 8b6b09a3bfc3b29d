package diag

import (
	"errors"
	"testing"
)

func TestDiagnostics(t *testing.T) {
	a := &List{File: "a.cfg"}
	a.Notef(9, "note %d", 1)
	a.Errorf(3, "bad %s", "thing")
	b := &List{File: "b.conf"}
	b.Warnf(1, "odd")
	ds := append(b.Diags, a.Diags...)
	Sort(ds)
	want := []string{"a.cfg:3: error: bad thing", "a.cfg:9: note: note 1", "b.conf:1: warning: odd"}
	for i, w := range want {
		if ds[i].String() != w {
			t.Errorf("diagnostic %d = %q, want %q", i, ds[i], w)
		}
	}
	if !HasErrors(ds) || HasErrors(b.Diags) {
		t.Error("HasErrors")
	}
	err := ErrorsOf(ds)
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || err.Error() != "a.cfg:3: error: bad thing" {
		t.Errorf("ErrorsOf = %v", err)
	}
	if ErrorsOf(b.Diags) != nil {
		t.Error("ErrorsOf without errors is not nil")
	}
}
