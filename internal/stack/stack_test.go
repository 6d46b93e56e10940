package stack

import (
	"testing"
	"unsafe"
)

// After Grow8K or Grow16K, calls that use up to nearly that much stack do
// not grow it again: the goroutine's stack is not copied (a local's
// address stays put). Without them it is.
func TestGrow(t *testing.T) {
	for _, c := range []struct {
		name  string
		grow  func()
		depth int // frames of deep's ~1 KiB each
	}{{"8K", Grow8K, 5}, {"16K", Grow16K, 12}, {"none", func() {}, 5}} {
		t.Run(c.name, func(t *testing.T) {
			moved := make(chan bool)
			go func() {
				c.grow()
				var x byte
				before := uintptr(unsafe.Pointer(&x))
				deep(c.depth)
				moved <- uintptr(unsafe.Pointer(&x)) != before
			}()
			if got, want := <-moved, c.name == "none"; got != want {
				t.Fatalf("stack copied: %v, want %v", got, want)
			}
		})
	}
}

// deep uses about n KiB of stack.
//
//go:noinline
func deep(n int) byte {
	var b [1000]byte
	use(b[:])
	if n <= 1 {
		return b[0]
	}
	return deep(n-1) + b[1]
}
