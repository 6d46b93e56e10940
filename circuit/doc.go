// Package circuit is the virtual stream of circuitmesh: the open and result
// headers, the Conn type (a net.Conn with deadlines and half-close) used at
// both ends of a circuit, and the splice a relay runs between two link
// streams. It never picks routes: the node package decides where a circuit
// goes and calls this package on the streams it opened or accepted.
//
// # Life of a circuit
//
// The source opens a stream on the link to the first hop and calls Dial
// (write the Open header, wait one round trip for the Result) or DialEarly
// (write the header and return at once; payload follows immediately and the
// first Read waits for the Result). DialSecure and DialEarlySecure are the
// same for a sealed circuit (FlagSealed): the open header carries the first
// message of an end-to-end handshake (package seal) and the payload then
// travels in sealed records; DialSecure returns once the destination
// proved its name, DialEarlySecure sends nothing until the first Write.
//
// Each relay reads the header with ReadOpen, checks it, and either refuses
// with Refuse (NoRoute, HopLimit, Overloaded, ...) or computes the next
// header with Open.Forward (hop limit decremented, hop index incremented,
// its name appended to the path), opens a stream
// on the link to the next hop, writes the header with WriteOpen, and joins
// the two streams with Splice or StartSplice. The relay does not wait for
// the result: the splice carries the result header back like any other
// bytes, so a refusal produced anywhere reaches the caller unchanged, and
// early data flows before the destination has answered.
//
// The destination reads the header with ReadOpen and calls Accept (which
// writes an Accepted result and returns the Conn) or Refuse; for a sealed
// open it answers the handshake with seal.Keys.Respond and calls
// AcceptSecure, which writes the result and the handshake's reply and, for
// the full handshake, reads the source's last message.
//
// Endings propagate hop by hop: a half-close (Conn.CloseWrite, or Close)
// reaches the far end as io.EOF; a stop-sending with CloseNormal (the far end
// closed without reading everything) becomes a half-close of the opposite
// direction; a reset (Conn.Reset, a lost link, a relay shutting down)
// reaches both ends as a *links.StreamResetError carrying one of the
// Close* reason codes. A circuit whose link died ends with an error wrapping
// links.ErrLinkLost at the ends attached to that link and with a reset
// carrying CloseLinkLost elsewhere.
//
// A Write after the other end closed the circuit cleanly fails with a
// *net.OpError wrapping a *ResetError from the other side with reason
// CloseNormal, which matches net.ErrClosed and links.ErrStreamReset: on
// a Conn, clear or sealed, and on a Resumable alike.
//
// After an end's Close or Reset (also one that follows the other end's
// reset), its Reads, Writes, deadline setters, CloseWrite and a second
// Close fail with a *net.OpError matching net.ErrClosed, as a
// net.TCPConn's do: on a Conn, clear or sealed, and on a Resumable alike.
// After Abort (a node closing its circuits) the end counts as closed
// too: its Reads and Writes fail at once with the abort's reset, the
// others with net.ErrClosed; a Resumable's AppClosed stays false until
// the application's own Close or Reset. Before any Close, an end whose
// circuit the other end reset fails its Reads, Writes and CloseWrite with
// that reset (a *ResetError, matching its reason's sentinel), on every
// kind alike. Each error names its own operation (Op "read", "write",
// "close" for CloseWrite and Close), also a Write's on an early sealed
// source whose handshake a Read saw fail.
//
// # What the caller must do
//
//   - Bound the time a peer may take to send its header: ReadOpen blocks
//     until the header arrives, so set a read deadline on the stream first
//     (Accept, Dial and DialEarly clear the stream's deadlines: a new Conn
//     has none).
//   - Pass a max header size to ReadOpen and ReadResult (<= 0 means
//     DefaultMaxHeaderSize, 4096 bytes).
//   - Keep the Splicer returned by StartSplice to stop circuits at shutdown
//     (Splicer.Reset(CloseShuttingDown)); splices never time out by
//     themselves.
//   - Close or Reset every Conn.
//
// # Memory bounds
//
// A header is at most DefaultMaxHeaderSize bytes (or the max given to the
// readers); a path is at most 255 names. A splice holds at most 2×bufSize
// bytes per circuit of its own (one buffer per direction, default 32 KiB,
// pooled): a direction reads only after its previous chunk was written, so
// a slow receiver stalls the relay's reads and the link's flow control
// stalls the sender. The link streams' own receive windows come on top.
// The large buffers are taken from the pool only while a direction is busy:
// an idle relayed circuit holds no buffer when its streams can peek (links'
// QUIC streams) and 2×IdleSpliceBuffer (1 KiB each) otherwise, and two
// goroutines (Splice copies one direction in its caller's goroutine).
//
// # Trust model
//
// Header fields are claims; only the neighbour on each link is
// authenticated (links.Link.Peer, by mutual TLS). Before acting on an open,
// the node must call CheckSource with the link's peer and role and refuse
// with code Policy when it fails: an open at hop 0 must come from its
// Source itself, a forwarded one from a router (leaves never forward) that
// ended the path with its own name (Open.CheckPath). A relay, being on the path,
// can still forge what it forwards: the Source of circuits it claims to
// relay, the path, the hop count, the trace context and the result (it
// can refuse in the destination's name or claim an accept). The names it
// forges are node names all the same: ReadOpen takes a Dest, Source or
// Path name only when identity.ValidateName accepts it, and ReadResult a
// Node or Path name, so no escapes or junk reach Conn.Path, RemoteAddr or
// spans (a node logs the refused header's error, where ValidateName quotes
// the name and cuts one longer than 63 bytes to 20).
//
// On an unsealed circuit (Dial, DialEarly, Accept) a relay also sees and
// can alter the payload, and the Source a destination sees is as
// trustworthy as the routers on the path. A sealed circuit (DialSecure,
// DialEarlySecure, AcceptSecure) runs an end-to-end handshake in which both
// ends prove their names with their certificates, bound to the header's
// destination, source, service and flags: a relay that changes any of them
// makes the handshake fail (ErrAuth, or a reset), the payload is encrypted and
// authenticated (a changed, dropped, replayed or reordered record fails
// with ErrIntegrity), and relays see only its sizes and timing. The path, hop
// count, trace context and a refusal remain the relays' word there too.
package circuit
