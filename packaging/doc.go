// Package packaging holds the tests of what ships around the binary: the
// systemd unit (systemd/epconsole.service: systemd-analyze verify, its
// security exposure) and the .deb and .rpm packages that scripts/package
// builds with the nfpm program in nfpm/ (its own Go module, so nfpm never
// reaches the epconsole binary) and the maintainer scripts in scripts/.
//
// The tools come from Debian's packages: systemd (systemd-analyze),
// lintian, rpm. A test without its tool is skipped, unless
// EPCONSOLE_REQUIRE_NETNS=1 (CI), where it installs the tool with apt-get.
package packaging
