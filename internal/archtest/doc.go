// Package archtest holds no code of its own: its test reads the import
// graph with `go list` and fails when a package imports what the package
// map in docs/architecture.md forbids (for example dataplane importing
// cluster, or the shipping binary linking the lab).
package archtest
