package status

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDocsExample keeps docs/status.md's example snapshot in step with the
// type: it decodes strictly, and names every field of the model.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/status.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "## Snapshot")
	if !ok {
		t.Fatal(`docs/status.md has no "## Snapshot" section`)
	}
	_, after, ok = strings.Cut(after, "```json\n")
	if !ok {
		t.Fatal("docs/status.md: no JSON example in the Snapshot section")
	}
	example, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatal("docs/status.md: unterminated JSON example")
	}
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("docs/status.md example does not decode as a Snapshot: %v", err)
	}
	if s.Schema != Schema {
		t.Errorf("example schema = %q, want %q", s.Schema, Schema)
	}
	for _, name := range jsonFields(reflect.TypeFor[Snapshot](), map[reflect.Type]bool{}) {
		if !strings.Contains(example, `"`+name+`":`) {
			t.Errorf("docs/status.md example lacks the field %q", name)
		}
		if !strings.Contains(string(doc), name) {
			t.Errorf("docs/status.md does not describe %q", name)
		}
	}
	// What the daemon serves for it is the same document.
	again, _ := json.MarshalIndent(s, "", "  ")
	var a, b any
	json.Unmarshal(again, &a)
	json.Unmarshal([]byte(example), &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the example is not in the form the daemon writes:\n%s", again)
	}
}

// jsonFields lists the JSON names of t's fields, recursively (findings as
// the status schema writes them).
func jsonFields(t reflect.Type, seen map[reflect.Type]bool) []string {
	if t == reflect.TypeFor[Findings]() {
		t = reflect.TypeFor[wireFinding]()
	}
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t == reflect.TypeFor[time.Time]() {
		return nil
	}
	seen[t] = true
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		names = append(names, jsonFields(f.Type, seen)...)
	}
	return names
}
