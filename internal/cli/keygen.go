package cli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// gossipKeyBytes is the size of a key keygen makes: 32 bytes, AES-256.
const gossipKeyBytes = 32

// keyFileMode is the mode of a key file keygen writes or extends.
const keyFileMode fs.FileMode = 0o600

// keygenLong is keygen's help text.
const keygenLong = `Makes a new gossip key: 32 random bytes (AES-256), base64, one line.
Without a flag it prints the key. -o FILE writes it to a new key file
(mode 0600) and never overwrites one. --add FILE appends it to an existing
key file as a secondary key (the last line), for rotation: copy the file to
every peer and reload them (SIGHUP), then move the new key to the first
line (the primary) on every peer and reload again, then delete the old one.
The key file holds one base64 key per line, the primary first; # comments
are allowed. Exit code 0: key made; 1: the file could not be written.`

// keygenOptions are keygen's parsed arguments.
type keygenOptions struct {
	out string // -o: a new key file
	add string // --add: an existing key file
}

// newKeygenCmd is `epconsole keygen`.
func newKeygenCmd(a *app) *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen [-o FILE | --add FILE]",
		Short: "make a gossip key: print it, write a new key file, or add it to one for rotation",
		Long:  keygenLong,
		Args:  noArgs(" (the key file goes after -o or --add)"),
		RunE: func(*cobra.Command, []string) error {
			if o.out != "" && o.add != "" {
				return usagef(exitUsage, "-o and --add exclude each other: -o writes a new key file, --add extends an existing one")
			}
			a.code = runKeygen(o, a.stdio)
			return nil
		},
		DisableFlagsInUseLine: true,
	}
	fs := cmd.Flags()
	fs.StringVarP(&o.out, "output", "o", "", "write the key to a new `file` (mode 0600; an existing file is never overwritten)")
	fs.StringVar(&o.add, "add", "", "append the key to the existing key `file` as a secondary key (rotation)")
	return cmd
}

// runKeygen makes one key and prints it or writes it where o says.
func runKeygen(o keygenOptions, stdio IO) int {
	key, err := newGossipKey(rand.Reader)
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole keygen: %v\n", err)
		return 1
	}
	switch {
	case o.out != "":
		err = writeNewKeyFile(o.out, key)
		if err == nil {
			fmt.Fprintf(stdio.Err, "wrote a new gossip key to %s (mode 0600): copy the same file to every peer\n", o.out)
		}
	case o.add != "":
		err = addKeyToFile(o.add, key)
		if err == nil {
			fmt.Fprintf(stdio.Err, "added a secondary gossip key to %s (the last line): copy the file to every peer and reload them; "+
				"then make it the primary (the first line) everywhere and reload again\n", o.add)
		}
	default:
		_, err = fmt.Fprintln(stdio.Out, key)
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "epconsole keygen: %v\n", err)
		return 1
	}
	return 0
}

// newGossipKey reads gossipKeyBytes from r and returns them in base64.
func newGossipKey(r io.Reader) (string, error) {
	b := make([]byte, gossipKeyBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// writeNewKeyFile creates path with mode 0600 holding key, and fails if
// path exists.
func writeNewKeyFile(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; refusing to overwrite a key file (peers that use its keys would stop understanding this node). "+
			"To rotate, add a key with: epconsole keygen --add %s; to replace it, remove or rename it first", path, path)
	}
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	if _, err := fmt.Fprintln(f, key); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// addKeyToFile appends key as the last line of the existing key file path
// (after a newline if the file does not end in one) and sets its mode to
// 0600.
func addKeyToFile(path, key string) error {
	cur, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist; --add extends an existing key file. To make a new one: epconsole keygen -o %s", path, path)
	}
	if err != nil {
		return fmt.Errorf("reading key file: %w", err)
	}
	line := key + "\n"
	if len(cur) > 0 && !strings.HasSuffix(string(cur), "\n") {
		line = "\n" + line
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, keyFileMode)
	if err != nil {
		return fmt.Errorf("opening key file: %w", err)
	}
	if err := f.Chmod(keyFileMode); err != nil {
		f.Close()
		return fmt.Errorf("setting the mode of %s to 0600: %w", path, err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("appending to key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("appending to key file %s: %w", path, err)
	}
	return nil
}
