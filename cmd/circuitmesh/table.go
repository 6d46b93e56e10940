package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// printTable prints rows under header, columns aligned; empty cells are "-".
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = termSafe(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printKV prints "key: value" lines with the values aligned.
func printKV(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], termSafe(p[1]))
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fmtDuration rounds d for a table: 3 significant digits below a second,
// seconds and minutes above.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// fmtAge is how long ago t was, from now.
func fmtAge(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtDuration(now.Sub(t))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtPath joins node names with arrows.
func fmtPath(p []string) string {
	return termSafe(strings.Join(p, " → "))
}

// termSafe replaces every rune of s that is not printable (control
// characters such as ESC, CR, LF and TAB, bidirectional overrides,
// invalid UTF-8) with '?'. Text the CLI prints may come from other nodes
// (names gossip announced, the reason a relay gave for a refusal, the
// path relays recorded): it must not move the terminal's cursor, rewrite
// a line, set its title or clipboard, or break a table's columns.
func termSafe(s string) string {
	if !strings.ContainsFunc(s, notPrintable) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if notPrintable(r) {
			return '?'
		}
		return r
	}, s)
}

// termSafeLines is termSafe of each line of s, keeping its line feeds.
func termSafeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = termSafe(l)
	}
	return strings.Join(lines, "\n")
}

func notPrintable(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }
