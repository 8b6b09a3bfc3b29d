// Command nfpm builds epconsole's .deb and .rpm packages with
// github.com/goreleaser/nfpm/v2. scripts/package runs it after staging the
// files; it is its own Go module, so nfpm and its dependencies never reach
// the epconsole binary (or the main module's go.mod).
//
//	go run . -stage DIR -bin FILE -arch amd64 -version 1.2.3 -out DIR
//
// -unit is installed as /lib/systemd/system/epconsole.service (.deb) or
// /usr/lib/systemd/system/epconsole.service (.rpm). -stage is a directory laid out as the installed system (usr/..., lib/...):
// every regular file under it is packaged at the same path, mode 0644
// (0755 when executable), owned by root. -bin is installed as
// /usr/bin/epconsole. packaging/scripts holds the maintainer scripts; the
// licence files go to /usr/share/doc/epconsole/copyright (.deb) and
// /usr/share/licenses/epconsole (.rpm).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

// options are the command's flags.
type options struct {
	stage, bin, unit, arch, version, out, scripts, copyright, licenses string
	formats                                                            string
	mtime                                                              time.Time
}

func main() {
	var o options
	var epoch int64
	flag.StringVar(&o.stage, "stage", "", "staged tree (required)")
	flag.StringVar(&o.bin, "bin", "", "the epconsole binary for -arch (required)")
	flag.StringVar(&o.unit, "unit", "packaging/systemd/epconsole.service", "the systemd unit")
	flag.StringVar(&o.arch, "arch", "amd64", "Go architecture: amd64 or arm64")
	flag.StringVar(&o.version, "version", "", "package version, starting with a digit (required)")
	flag.StringVar(&o.out, "out", "dist", "output directory")
	flag.StringVar(&o.scripts, "scripts", "packaging/scripts", "maintainer scripts: postinst, prerm, postrm")
	flag.StringVar(&o.copyright, "copyright", "", "the Debian copyright file (required)")
	flag.StringVar(&o.licenses, "licenses", "LICENSE,THIRD_PARTY_LICENSES", "licence files for /usr/share/licenses/epconsole (.rpm), comma-separated")
	flag.StringVar(&o.formats, "formats", "deb,rpm", "package formats, comma-separated")
	flag.Int64Var(&epoch, "mtime", 0, "file and package time, Unix seconds (SOURCE_DATE_EPOCH; 0: now)")
	flag.Parse()
	if epoch > 0 {
		o.mtime = time.Unix(epoch, 0).UTC()
	} else {
		o.mtime = time.Now().UTC().Truncate(time.Second)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "nfpm:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.stage == "" || o.bin == "" || o.version == "" || o.copyright == "" {
		return errors.New("-stage, -bin, -version and -copyright are required (scripts/package passes them)")
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	for _, format := range strings.Split(o.formats, ",") {
		info, err := buildInfo(o)
		if err != nil {
			return err
		}
		pkg, err := nfpm.Get(format)
		if err != nil {
			return err
		}
		info = nfpm.WithDefaults(info)
		target := filepath.Join(o.out, pkg.ConventionalFileName(info))
		f, err := os.Create(target)
		if err != nil {
			return err
		}
		info.Target = target
		if err := pkg.Package(info, f); err != nil {
			f.Close()
			os.Remove(target)
			return fmt.Errorf("%s: %w", format, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println(target)
	}
	return nil
}

// buildInfo is the package's metadata and contents (a fresh one for each
// format: packaging rewrites the contents).
func buildInfo(o options) (*nfpm.Info, error) {
	info := &nfpm.Info{
		Name:          "epconsole",
		Arch:          o.arch,
		Platform:      "linux",
		Version:       o.version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "epconsole maintainers <epconsole@users.noreply.github.com>",
		Description: "HA endpoint (VIP) for a Kubernetes control plane\n" +
			"epconsole gives a Kubernetes control plane one highly available endpoint:\n" +
			"LB peers gossip and elect the owner of a virtual IP, every peer programs\n" +
			"nftables DNAT from the VIP to the healthy API servers, and a console and\n" +
			"a Nagios-style checker show the health of the whole endpoint.",
		Homepage: "https://github.com/epconsole/epconsole",
		License:  "Apache-2.0",
		MTime:    o.mtime,
	}
	info.RPM.Summary = "HA endpoint (VIP) for a Kubernetes control plane"
	info.RPM.Group = "System Environment/Daemons"
	info.Scripts = nfpm.Scripts{
		PostInstall: filepath.Join(o.scripts, "postinst"),
		PreRemove:   filepath.Join(o.scripts, "prerm"),
		PostRemove:  filepath.Join(o.scripts, "postrm"),
	}
	for _, s := range []string{info.Scripts.PostInstall, info.Scripts.PreRemove, info.Scripts.PostRemove} {
		if _, err := os.Stat(s); err != nil {
			return nil, fmt.Errorf("maintainer script: %w", err)
		}
	}

	add := func(src, dst string, mode os.FileMode, packager, typ string) {
		info.Contents = append(info.Contents, &files.Content{
			Source: src, Destination: dst, Type: typ, Packager: packager,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: o.mtime},
		})
	}
	add(o.bin, "/usr/bin/epconsole", 0o755, "", "")
	// Debian's units are in /lib/systemd/system; Fedora's and RHEL's in
	// /usr/lib/systemd/system (their /lib is a symlink rpm must not own).
	add(o.unit, "/lib/systemd/system/epconsole.service", 0o644, "deb", "")
	add(o.unit, "/usr/lib/systemd/system/epconsole.service", 0o644, "rpm", "")
	add(o.copyright, "/usr/share/doc/epconsole/copyright", 0o644, "deb", "")
	for _, l := range strings.Split(o.licenses, ",") {
		add(l, "/usr/share/licenses/epconsole/"+filepath.Base(l), 0o644, "rpm", files.TypeRPMLicense)
	}
	err := filepath.WalkDir(o.stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files are packaged", path)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(o.stage, path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		dst, packager := "/"+filepath.ToSlash(rel), ""
		if strings.HasPrefix(dst, "/usr/share/lintian/") {
			packager = "deb"
		}
		add(path, dst, mode, packager, "")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}
