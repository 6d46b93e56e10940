package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestConfigFileSizeBounded: the daemon reads at most maxConfigFile
// (1 MiB) of its --config file. A larger file is refused with an error
// naming the file and the limit, and so is one that never ends (here
// /dev/stdin of an endless stream of comment lines, each under the line
// limit), which `run` read until memory ran out.
func TestConfigFileSizeBounded(t *testing.T) {
	dir := t.TempDir()
	big := writeFile(t, dir, "big.conf", "listen = 127.0.0.1:0\n"+strings.Repeat("# a comment line of the config file\n", maxConfigFile/36+1))
	_, err := parseConfig(big)
	var tl *ConfigTooLargeError
	if !errors.Is(err, ErrConfigTooLarge) || !errors.As(err, &tl) || tl.Path != big || !strings.Contains(err.Error(), "big.conf is larger than 1 MiB") {
		t.Fatalf("config file of more than 1 MiB: %v, want it refused as larger than 1 MiB, naming it", err)
	}

	cmd := exec.Command(binary(t), "run", "--config", "/dev/stdin", "--insecure", "--name", "a", "--data-dir", dir, "--listen", "127.0.0.1:0")
	cmd.Stdin = endlessComments{}
	out, err := exitsWithin(t, cmd, 20*time.Second, "run --config of an endless stream")
	if err == nil || !strings.Contains(out, "config file /dev/stdin is larger than 1 MiB") {
		t.Fatalf("run --config of an endless stream: %v, %q; want the file refused as larger than 1 MiB", err, out)
	}
}

// endlessComments reads as config comment lines without end.
type endlessComments struct{}

func (endlessComments) Read(p []byte) (int, error) {
	const line = "# comment\n"
	for i := range p {
		p[i] = line[i%len(line)]
	}
	return len(p), nil
}
