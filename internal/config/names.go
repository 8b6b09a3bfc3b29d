package config

// ValidName reports whether s is usable as a cluster, node or backend
// name: 1 to 63 letters, digits, '-', '_' or '.', not starting with one of
// the last three. Tools that write configs (the importer) use the same rule.
func ValidName(s string) bool { return validName(s) }
