package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is a user id other than the test's own (and root's).
const nobody = 65534

// wantUnsafe checks that err is an *UnsafeFileError naming path with its
// owner and mode.
func wantUnsafe(t *testing.T, what string, err error, path string, uid uint32, mode fs.FileMode) {
	t.Helper()
	var ue *UnsafeFileError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnsafeFile) {
		t.Fatalf("%s: %v, want an *UnsafeFileError for %s", what, err, path)
	}
	if ue.Path != path || ue.UID != uid || ue.Mode != mode {
		t.Fatalf("%s: refused %s uid %d mode %04o, want %s uid %d mode %04o", what, ue.Path, ue.UID, ue.Mode, path, uid, mode)
	}
	for _, s := range []string{path, fmt.Sprintf("uid %d", uid), fmt.Sprintf("%04o", mode)} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: %q does not say %q", what, err, s)
		}
	}
}

// TestLoadCARefusesWhatOthersCanChange: a CA another user could have
// chosen (its directory or ca.key theirs, or writable by them) or read
// (ca.key readable by group or others) is refused, and one this user keeps
// private is loaded.
func TestLoadCARefusesWhatOthersCanChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod-ca")
	if err := SaveCA(dir, newCA(t, "prod"), false); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, CAKeyFile)
	me := uint32(os.Geteuid())
	chmod := func(p string, m fs.FileMode) {
		t.Helper()
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	chmod(dir, 0o775)
	_, err := LoadCA(dir)
	wantUnsafe(t, "group-writable CA directory", err, dir, me, 0o775)
	if !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("%v does not say how to fix it", err)
	}
	chmod(dir, 0o755)
	chmod(key, 0o640)
	_, err = LoadCA(dir)
	wantUnsafe(t, "group-readable ca.key", err, key, me, 0o640)
	if !strings.Contains(err.Error(), "chmod go-rwx "+key) {
		t.Fatalf("%v does not say how to fix it", err)
	}
	chmod(key, 0o600)
	if _, err := LoadCA(dir); err != nil {
		t.Fatalf("private CA: %v", err)
	}

	if me != 0 {
		t.Skip("CANNOT RUN the rest: giving a file to another user needs root")
	}
	// Root too refuses what another user owns: they can replace it.
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err = LoadCA(dir)
	wantUnsafe(t, "CA directory of another user", err, dir, nobody, 0o755)
	if err := SaveCA(dir, newCA(t, "prod"), true); !errors.Is(err, ErrUnsafeFile) {
		t.Fatalf("SaveCA into a directory of another user: %v, want ErrUnsafeFile", err)
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(key, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err = LoadCA(dir)
	wantUnsafe(t, "ca.key of another user", err, key, nobody, 0o600)
}

// TestSaveCARefusesADirectoryOthersCanWrite: a new CA is not written where
// another user could read its key (by replacing the directory's files) or
// swap the CA, and nothing is left there.
func TestSaveCARefusesADirectoryOthersCanWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prod-ca")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // whatever the umask
		t.Fatal(err)
	}
	err := SaveCA(dir, newCA(t, "prod"), false)
	wantUnsafe(t, "SaveCA into a world-writable directory", err, dir, uint32(os.Geteuid()), 0o777)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused SaveCA left %v", entries)
	}
}

// TestLoadIdentityRefusesAnOpenKey: node.key readable or writable by group
// or others stops the node from loading it, like ssh with a private key.
func TestLoadIdentityRefusesAnOpenKey(t *testing.T) {
	dir := t.TempDir()
	if err := SaveIdentity(dir, issue(t, newCA(t, "prod"), "b"), false); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, KeyFile)
	for _, m := range []fs.FileMode{0o644, 0o620, 0o604} {
		if err := os.Chmod(key, m); err != nil {
			t.Fatal(err)
		}
		_, err := LoadDir(dir)
		wantUnsafe(t, fmt.Sprintf("node.key %04o", m), err, key, uint32(os.Geteuid()), m)
	}
	for _, m := range []fs.FileMode{0o600, 0o400} {
		if err := os.Chmod(key, m); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadDir(dir); err != nil {
			t.Fatalf("node.key %04o: %v", m, err)
		}
	}
}
