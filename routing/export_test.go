package routing

// SentUpdate is an update entry of a routing message, for the tests of
// package routing_test.
type SentUpdate struct {
	Origin string
	Seqno  uint16
	Metric Metric
}

// DecodeUpdates returns the updates of a routing message.
func DecodeUpdates(payload []byte) ([]SentUpdate, error) {
	entries, err := decodeMessage(payload, maxEntriesLimit)
	if err != nil {
		return nil, err
	}
	var out []SentUpdate
	for _, en := range entries {
		if en.kind == kindUpdate {
			out = append(out, SentUpdate{en.origin, en.seqno, en.metric})
		}
	}
	return out, nil
}
