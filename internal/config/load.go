package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// maxFileSize bounds every file the config reads (the config itself, keys,
// certificates), so a path to a huge or endless file cannot exhaust memory.
const maxFileSize = 1 << 20

// Option changes how Load and Parse treat the files a config refers to.
type Option func(*options)

type options struct {
	readFile func(path string) ([]byte, error)
	// statFile gives a key file's mode; nil (with WithReadFile) skips the
	// mode check, as the files are not on disk then.
	statFile func(path string) (os.FileInfo, error)
	// noSecrets skips the gossip key file; offline also skips certificate,
	// key and CA files (see WithoutSecrets and Offline).
	noSecrets, offline bool
}

// WithReadFile makes the config read the files it refers to (gossip key,
// CA, certificates and keys) through fn instead of the file system. fn gets
// the path after relative paths were resolved against the config file's
// directory. Tests use it to check a config that names production paths.
func WithReadFile(fn func(path string) ([]byte, error)) Option {
	return func(o *options) { o.readFile, o.statFile = fn, nil }
}

// ReadFile reads a regular file of at most 1 MiB. It refuses FIFOs, devices
// and directories instead of blocking or reading forever.
func ReadFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

// Load reads, parses and checks the config file at path. It returns the
// config only when there is no error; the diagnostics (errors and any
// warnings) all carry a Subject range in path, sorted by position.
// Relative paths inside the config are resolved against path's directory.
func Load(path string, opts ...Option) (*Config, hcl.Diagnostics) {
	src, err := ReadFile(path)
	if err != nil {
		rng := hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read config file",
			Detail:   fmt.Sprintf("%v. Pass the right file with -c, or create it from the sample config.hcl.", unwrapPath(err)),
			Subject:  &rng,
		}}
	}
	return Parse(src, path, opts...)
}

// unwrapPath drops the *os.PathError wrapper's operation prefix noise only
// when it adds nothing; it keeps the path and the reason.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Parse parses and checks config source src; filename is used in
// diagnostics and to resolve relative paths. It returns the config only
// when there is no error. Parse never panics, whatever src holds.
func Parse(src []byte, filename string, opts ...Option) (*Config, hcl.Diagnostics) {
	o := options{readFile: ReadFile, statFile: os.Stat}
	for _, opt := range opts {
		opt(&o)
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() || file == nil {
		return nil, finish(diags, filename)
	}
	var raw rawConfig
	diags = append(diags, gohcl.DecodeBody(file.Body, nil, &raw)...)
	d := &decoder{
		file:      filename,
		dir:       filepath.Dir(filename),
		readFile:  o.readFile,
		statFile:  o.statFile,
		noSecrets: o.noSecrets || o.offline,
		offline:   o.offline,
		// A structural error (unknown argument, block without its label,
		// duplicate block) drops that part from raw: check the rest, but
		// do not also report the dropped part as missing.
		partial: diags.HasErrors(),
	}
	cfg := d.decode(&raw)
	cfg.src = sourcesOf(&raw, filename)
	diags = finish(append(diags, d.diags...), filename)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// finish gives every diagnostic a subject (the start of the file when it has
// none) and sorts them by position, keeping the order of equal positions.
func finish(diags hcl.Diagnostics, filename string) hcl.Diagnostics {
	for _, d := range diags {
		if d.Subject == nil {
			d.Subject = &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		}
	}
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return diags
}
