package simulate

import (
	"fmt"
	"runtime/metrics"
)

// memoryNote is what a progress line says of the process's memory after a
// step: the heap the last garbage collection found live, in all and per
// node of the cluster. It reads the collector's figure, forcing no
// collection, so it lags by at most one cycle; before the first
// collection there is no such figure (the runtime reads 0), and the note
// says so. Progress lines only: the report stays the same from run to run.
func memoryNote(nodes int) string {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return ""
	}
	if s[1].Value.Uint64() == 0 {
		return "heap: no collection yet"
	}
	live := s[0].Value.Uint64()
	note := "heap " + memSize(float64(live)) + " live"
	if nodes > 0 {
		note += fmt.Sprintf(", %s per node", memSize(float64(live)/float64(nodes)))
	}
	return note
}

// memSize writes n bytes with one decimal in the largest binary unit
// that keeps it at least 1.
func memSize(n float64) string {
	unit := "B"
	for _, u := range []string{"KiB", "MiB", "GiB"} {
		if n < 1024 {
			break
		}
		n, unit = n/1024, u
	}
	return fmt.Sprintf("%.1f %s", n, unit)
}
