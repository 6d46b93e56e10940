package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestConfigFileValueErrorsNameTheLine: a value in a --config file that
// parses as its flag's type but is refused by the daemon's checks is
// reported with the file and the line (FILE:LINE), as a syntax error is,
// and so is a line longer than the scanner takes.
func TestConfigFileValueErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	pre := "# a daemon's config\nlisten = 127.0.0.1:0\n"
	for _, line := range []string{
		"log-level = loud",
		"log-format = xml",
		"link-cost = b=5",
		"drain-timeout = -1s",
		"expose = web",
		"listen = nope",
		"max-links = -5",
		"link = " + strings.Repeat("a", 70000),
	} {
		cfg := writeFile(t, dir, "node.conf", pre+line+"\n")
		_, err := parseRun(t, "--config", cfg, "--insecure", "--name", "a", "--data-dir", dir)
		want := fmt.Sprintf("node.conf:%d", strings.Count(pre, "\n")+1)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config line %.40q: error %.200v, want it to name %s", line, err, want)
		}
	}
}
