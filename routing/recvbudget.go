package routing

import "time"

// A neighbour's messages are taken within a budget, counted before they
// are decoded: the engine's own send rules let a neighbour send at most
// maxBurstMessages messages and MaxBurstBytes bytes (or one message of
// up to maxMessageBytes) per MinTriggeredInterval, plus its requests,
// which are not paced. Receive takes recvBudgetFactor times that, and up
// to recvBurstWindows windows of it at once (a link's control queue
// delivered in one go after a stall: at most 256 frames and 4 MiB,
// links.DefaultControlQueue and links.DefaultControlBytes); a message
// beyond it is refused unread and counted in Stats.OverBudget. A
// neighbour flooding tiny messages thus costs the engine one comparison
// each, not a decode and its outputs.
const (
	recvBudgetFactor = 4
	recvBurstWindows = 8
)

// recvBudget is a neighbour's receive budget: for messages and for bytes,
// the time at which what it sent so far would have been taken at the
// budget's rate (a generic cell rate algorithm, with no float and no
// refill loop).
type recvBudget struct {
	msgAt, byteAt time.Duration
}

// admit charges a message of n bytes received at t to nb's budget, and
// reports whether it is within it (a message refused is not charged).
func (e *Engine) admit(t time.Duration, nb *neighbour, n int) bool {
	w := e.cfg.MinTriggeredInterval
	perMsg := w / (recvBudgetFactor * maxBurstMessages)
	perWindow := int64(recvBudgetFactor * max(e.cfg.MaxBurstBytes, maxMessageBytes))
	cost := time.Duration(int64(n) * int64(w) / perWindow)
	tolerance := recvBurstWindows * w
	msgAt, byteAt := max(nb.rx.msgAt, t)+perMsg, max(nb.rx.byteAt, t)+cost
	if msgAt-t > tolerance || byteAt-t > tolerance {
		return false
	}
	nb.rx.msgAt, nb.rx.byteAt = msgAt, byteAt
	return true
}
