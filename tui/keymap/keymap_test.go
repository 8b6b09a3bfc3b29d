package keymap_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/charmbracelet/bubbles/key"

	"github.com/epconsole/epconsole/tui/keymap"
)

// TestBindingsHaveHelp: every binding has keys and a help text, so
// bubbles/help shows all of them.
func TestBindingsHaveHelp(t *testing.T) {
	k := reflect.ValueOf(*keymap.DefaultKeyMap())
	for i := range k.NumField() {
		b := k.Field(i).Interface().(key.Binding)
		name := k.Type().Field(i).Name
		if len(b.Keys()) == 0 || b.Help().Key == "" || b.Help().Desc == "" {
			t.Errorf("%s: keys %q, help %+v", name, b.Keys(), b.Help())
		}
	}
}

// TestScrollingLeavesActionKeys: tables and the viewport scroll with the
// same keys as the rest and never take d, u, h, L or r (bubbles binds d and u
// to half pages by default).
func TestScrollingLeavesActionKeys(t *testing.T) {
	k := keymap.DefaultKeyMap()
	var scroll []key.Binding
	tk := reflect.ValueOf(k.Table())
	for i := range tk.NumField() {
		scroll = append(scroll, tk.Field(i).Interface().(key.Binding))
	}
	vk := reflect.ValueOf(k.Viewport())
	for i := range vk.NumField() {
		scroll = append(scroll, vk.Field(i).Interface().(key.Binding))
	}
	for _, b := range scroll {
		if !b.Enabled() {
			continue
		}
		for _, a := range [][]string{k.Drain.Keys(), k.Undrain.Keys(), k.Handoff.Keys(), k.Quit.Keys(), k.Filter.Keys(), k.Lab.Keys(), k.Return.Keys()} {
			for _, x := range a {
				if slices.Contains(b.Keys(), x) {
					t.Errorf("scrolling binding %q takes %q", b.Keys(), x)
				}
			}
		}
	}
}

func TestViewIndex(t *testing.T) {
	for k, want := range map[string]int{"1": 0, "6": 5, "0": -1, "a": -1, "12": -1} {
		if got := keymap.ViewIndex(k); got != want {
			t.Errorf("ViewIndex(%q) = %d, want %d", k, got, want)
		}
	}
}
