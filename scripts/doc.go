// Package scripts holds the tests of the release scripts next to it:
// release (static binaries that say their version) and
// third-party-licenses (THIRD_PARTY_LICENSES names every linked module).
package scripts
