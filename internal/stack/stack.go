// Package stack sizes a new goroutine's stack up front. A goroutine
// starts with a 2 KiB stack that the runtime doubles, copying the whole
// stack each time, when a call needs more; a goroutine that opens a
// circuit (a handshake, quic-go's stream writes, AES-GCM) grows two or
// three times, each copy walking every frame of a deep call stack. Grown
// once at its start, while the stack holds one frame, the copy costs
// almost nothing. The runtime still shrinks a stack that stays mostly
// unused (at garbage collection), so an idle goroutine does not keep it.
package stack

// Grow8K grows the calling goroutine's stack to at least 8 KiB.
//
//go:noinline
func Grow8K() {
	var b [6 << 10]byte
	use(b[:])
}

// Grow16K grows the calling goroutine's stack to at least 16 KiB.
//
//go:noinline
func Grow16K() {
	var b [12 << 10]byte
	use(b[:])
}

// use keeps b, so the compiler cannot drop the frame that holds it.
//
//go:noinline
func use(b []byte) {
	b[0] = 0
}
