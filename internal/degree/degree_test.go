package degree

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSamplerRecordsOvershoot(t *testing.T) {
	var calls atomic.Int32
	s := Sample(time.Millisecond, 2, func() map[string][]string {
		if calls.Add(1) == 3 {
			return map[string][]string{"a": {"b", "c", "d"}, "b": {"a"}}
		}
		return map[string][]string{"a": {"b"}, "b": {"a"}}
	})
	for calls.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	worst, over := s.Stop()
	if worst != 3 || len(over) != 1 || !strings.HasPrefix(over[0], "a: 3 links b c d") {
		t.Fatalf("worst %d over %q: want 3 and one sample of a", worst, over)
	}
	if w, o := s.Stop(); w != worst || len(o) != 1 {
		t.Fatalf("second Stop = %d %q", w, o)
	}
}
