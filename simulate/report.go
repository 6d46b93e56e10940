package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// resultNote is the measurement or error of a step, for one line of text;
// wall adds the step's wall time (for a run in virtual time).
func resultNote(r StepResult, wall bool) string {
	var notes []string
	if wall {
		notes = append(notes, fmt.Sprintf("%v virtual, %v wall", round(r.Elapsed), round(r.Wall)))
	}
	if r.Error != "" {
		notes = append(notes, r.Error)
	}
	if r.ChangeLine > 0 {
		notes = append(notes, fmt.Sprintf("after %v since line %d", round(r.SinceChange), r.ChangeLine))
	}
	if st := r.Stretch; st != nil {
		note := fmt.Sprintf("%d of %d routes longer than the shortest path", st.Longer, st.Routes)
		if st.Longer > 0 {
			note += fmt.Sprintf(", worst %s", st.Worst)
		}
		notes = append(notes, note)
	}
	if t := r.Transfer; t != nil {
		rate := "no time passed"
		if t.Duration > 0 {
			rate = fmt.Sprintf("%.1f MiB/s", t.Throughput()/(1<<20))
		}
		notes = append(notes, fmt.Sprintf("%s in %v = %s, open %v, path %s",
			sizeString(t.Bytes), round(t.Duration), rate, round(t.Open), strings.Join(t.Path, "-")))
	}
	if w := r.Workload; w != nil {
		notes = append(notes, w.String())
	}
	if len(notes) == 0 {
		return ""
	}
	return "  (" + strings.Join(notes, "; ") + ")"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// WriteTable writes the report as text: one row per step, the output of
// print steps, the cluster's state at each failed step, the measurements
// and a verdict line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	clock := ""
	if r.Virtual {
		clock = " in virtual time"
	}
	fmt.Fprintf(tw, "scenario %s on the %s backend%s\n\n", r.Script, r.Backend, clock)
	if r.Virtual {
		fmt.Fprintln(tw, "LINE\tRESULT\tSTEP\tTIME\tWALL\tDETAIL")
	} else {
		fmt.Fprintln(tw, "LINE\tRESULT\tSTEP\tTIME\tDETAIL")
	}
	for _, s := range r.Steps {
		wall := ""
		if r.Virtual {
			wall = round(s.Wall).String() + "\t"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s%s\n", s.Line, s.Status, s.Step, round(s.Elapsed), wall, strings.TrimSpace(resultNote(s, false)))
		for _, text := range []string{s.Output, s.State} {
			if text == "" {
				continue
			}
			tw.Flush()
			for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	if len(r.Measurements) > 0 {
		fmt.Fprintln(tw, "\nMEASUREMENT\tLINE\tVALUE")
		for _, m := range r.Measurements {
			fmt.Fprintf(tw, "%s\t%d\t%.2f %s\n", m.Name, m.Line, m.Value, m.Unit)
		}
	}
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	if r.Virtual {
		fmt.Fprintf(tw, "\n%s: %d expectations passed, %d steps failed, in %v virtual (%v wall); teardown %v virtual (%v wall)\n",
			verdict, r.Passed, r.Failed, round(r.Duration), round(r.Wall), round(r.Teardown), round(r.TeardownWall))
	} else {
		fmt.Fprintf(tw, "\n%s: %d expectations passed, %d steps failed, in %v; teardown %v\n", verdict, r.Passed, r.Failed, round(r.Duration), round(r.Teardown))
	}
	return tw.Flush()
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode the report of %s: %w", r.Script, err)
	}
	return nil
}
