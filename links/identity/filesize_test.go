package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLoadRefusesHugeFiles: an identity file far larger than a PEM
// certificate or key (a wrong path given to --ca, a file filled by a
// runaway copy) is refused, naming the file, without being read whole.
// Before, each file was read whole and whatever followed the first PEM
// block was ignored: a node.crt of its certificate and 400 MiB of junk
// was taken by a daemon's reload, whose resident memory went from 26 MiB
// to 437 MiB, and 848 MiB with such a ca.crt as well.
func TestLoadRefusesHugeFiles(t *testing.T) {
	ca := newCA(t, "prod")
	for _, name := range []string{CertFile, KeyFile, CACertFile} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveIdentity(dir, issue(t, ca, "a"), false); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Write(bytes.Repeat([]byte("A"), 32<<20))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = LoadDir(dir)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than") {
				t.Errorf("LoadDir with a %s of 32 MiB: %v, want it refused as larger than the bound, naming it", name, err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("LoadDir with a %s of 32 MiB allocated %d MiB", name, got>>20)
			}
		})
	}
	dir := t.TempDir()
	if err := SaveCA(dir, ca, false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CACertFile), bytes.Repeat([]byte("A"), 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadCA with a ca.crt of 2 MiB: %v, want it refused as larger than the bound", err)
	}
}
