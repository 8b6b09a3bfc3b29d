package build

import (
	"reflect"

	"github.com/epconsole/epconsole/internal/status"
	"github.com/epconsole/epconsole/internal/termtext"
)

// cleanText strips control characters and terminal escapes from every
// string of the snapshot (termtext.Clean): much of it comes from peers
// and probed servers (readyz check names, reasons, certificate names,
// peer names, event details), and the console, check and the JSON
// readers show it on terminals. Map keys are left alone (they are config
// names).
func cleanText(s *status.Snapshot) { cleanValue(reflect.ValueOf(s).Elem()) }

func cleanValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			if c := termtext.Clean(v.String()); c != v.String() {
				v.SetString(c)
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			cleanValue(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				cleanValue(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			cleanValue(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if e := it.Value(); e.Kind() == reflect.String {
				if c := termtext.Clean(e.String()); c != e.String() {
					v.SetMapIndex(it.Key(), reflect.ValueOf(c).Convert(e.Type()))
				}
			}
		}
	}
}
