package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// FuzzParseForwardFlag parses --forward values: an accepted one, written
// back as LISTEN=PEER/SERVICE, parses to the same forward, and a refused
// one is a usage error.
func FuzzParseForwardFlag(f *testing.F) {
	for _, s := range []string{"8080=b/web", "127.0.0.1:0=node-1/api", "[::1]:9000=c/ssh=x", ":80=a/", "=a/b", "300.1.1.1:80=a/b", "80=A/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := parseForwardFlag(s)
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseForwardFlag(%q): %v is not a usage error", s, err)
			}
			return
		}
		again, err := parseForwardFlag(fw.listen + "=" + fw.peer + "/" + fw.service)
		if err != nil || again != fw {
			t.Fatalf("%q parsed to %+v, which parses to %+v (%v)", s, fw, again, err)
		}
	})
}

// FuzzParseLinkCost parses --link-cost values: an accepted cost is auto
// (0) or within the bounds and prints back to the same PEER=COST.
func FuzzParseLinkCost(f *testing.F) {
	for _, s := range []string{"b=10", "b=auto", "b=0", "b=4294967296", "b=-1", "b", "=1", "b=+5", "b=010"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		peer, cost, err := parseLinkCost(s)
		if err != nil {
			return
		}
		v := "auto"
		if cost != 0 {
			v = strconv.FormatUint(uint64(cost), 10)
		}
		p2, c2, err := parseLinkCost(peer + "=" + v)
		if err != nil || p2 != peer || c2 != cost {
			t.Fatalf("%q parsed to %q %d, which parses to %q %d (%v)", s, peer, cost, p2, c2, err)
		}
	})
}

// FuzzParseConfig reads any config file: the entries read, written back
// one "--flag = quoted value" a line, read back the same.
func FuzzParseConfig(f *testing.F) {
	f.Add("# daemon\nname = a\nlink = 192.0.2.1:4500\nlink = 192.0.2.2:4500\n\n--data-dir = \"/var/lib/circuitmesh\"\npolicy = allow * -> *\n")
	f.Add("x = \"unterminated\n")
	f.Add("= value\n")
	f.Add("k = \"a\\nb\\x00\"\r\nk2=v=w\n")
	f.Add("----k = v\n")
	f.Fuzz(func(t *testing.T, text string) {
		dir := t.TempDir()
		path := filepath.Join(dir, "c")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		entries, err := parseConfig(path)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, e := range entries {
			b.WriteString("--" + e.key + " = " + strconv.Quote(e.value) + "\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := parseConfig(path)
		if err != nil {
			t.Fatalf("entries of %q written back as %q do not parse: %v", text, b.String(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("%d entries read back as %d", len(entries), len(again))
		}
		for i := range entries {
			if again[i].key != entries[i].key || again[i].value != entries[i].value {
				t.Fatalf("entry %+v read back as %+v", entries[i], again[i])
			}
		}
	})
}

// FuzzParseExposeFlag parses --expose values whose host is an IP literal
// (a name would be looked up): an accepted one, written back as
// NAME=HOST:PORT, parses to the same service and target, and a refused
// one is a usage error.
func FuzzParseExposeFlag(f *testing.F) {
	for _, s := range []string{"web=127.0.0.1:8080", "a=b=[::1]:22", "api/v1=192.0.2.1:443", "web=127.0.0.1:0", "=127.0.0.1:80", "web", "web=300.1.1.1:80", "x y=127.0.0.1:80", "web=[fe80::1%eth0]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if i := strings.LastIndexByte(s, '='); i >= 0 {
			if host, _, err := net.SplitHostPort(s[i+1:]); err == nil && net.ParseIP(host) == nil {
				return
			}
		}
		e, err := parseExposeFlag(s)
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseExposeFlag(%q): %v is not a usage error", s, err)
			}
			return
		}
		again, err := parseExposeFlag(e.service + "=" + e.target)
		if err != nil || again != e {
			t.Fatalf("%q parsed to %+v, which parses to %+v (%v)", s, e, again, err)
		}
		if _, err := net.ResolveTCPAddr("tcp", e.target); err != nil {
			t.Fatalf("%q: target %q that net does not take: %v", s, e.target, err)
		}
	})
}

// keyContext is the context of a command whose flags are given: the
// gossip key flags of run, and keys' --key-file, with stdin reading in.
func keyContext(t *testing.T, in string, args ...string) *cli.Context {
	set := flag.NewFlagSet("fuzz", flag.ContinueOnError)
	for _, fl := range []cli.Flag{&cli.StringFlag{Name: "gossip-key"}, &cli.PathFlag{Name: "gossip-key-file"}, &cli.PathFlag{Name: "key-file"}} {
		if err := fl.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(&cli.App{Reader: strings.NewReader(in)}, set, nil)
}

// FuzzGossipKey reads any gossip key file, as --gossip-key-file and as
// keys' --key-file and stdin give it: the three agree; an accepted key is
// the 16, 24 or 32 bytes the file's base64 decodes to; a refused one is
// a usage error that says nothing of the file's text (a key, or part of
// one): the same as for a file holding "!".
func FuzzGossipKey(f *testing.F) {
	for _, s := range []string{"MDEyMzQ1Njc4OWFiY2RlZg==\n", " MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\r\n", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfe}, 32)),
		"MDEyMzQ1Njc4OWFiY2RlZg", "MDEyMzQ1Njc4OWFiY2Rl", "c2hvcnQ=", "MDEyMzQ1Njc4OWFi\nY2RlZg=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(t.TempDir(), "gossip.key")
		read := func(text string) (keys [3]string, errs [3]error) {
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			var run []byte
			run, errs[0] = gossipKey(keyContext(t, "", "--gossip-key-file", path))
			keys[0] = base64.StdEncoding.EncodeToString(run)
			keys[1], errs[1] = readKey(keyContext(t, "", "--key-file", path))
			keys[2], errs[2] = readKey(keyContext(t, text))
			return keys, errs
		}
		keys, errs := read(text)
		_, other := read("!")
		for i, err := range errs {
			var ue *usageError
			if err != nil && (!errors.As(err, &ue) || err.Error() != other[i].Error()) {
				t.Fatalf("key %q: %v, not the usage error of any refused key: %v", text, err, other[i])
			}
		}
		if (errs[0] == nil) != (errs[1] == nil) || (len(text) <= 4096 && (errs[1] == nil) != (errs[2] == nil)) {
			t.Fatalf("key %q: --gossip-key-file %v, --key-file %v, stdin %v", text, errs[0], errs[1], errs[2])
		}
		if errs[0] != nil {
			return
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if err != nil || (len(raw) != 16 && len(raw) != 24 && len(raw) != 32) {
			t.Fatalf("key %q accepted: %d bytes (%v)", text, len(raw), err)
		}
		for i, k := range keys {
			if got, err := base64.StdEncoding.DecodeString(k); (i < 2 || errs[2] == nil) && (err != nil || !bytes.Equal(got, raw)) {
				t.Fatalf("key %q read as %q, not %x (%v)", text, keys, raw, err)
			}
		}
	})
}
