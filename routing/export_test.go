package routing

// SentUpdate is an update entry of a routing message, for the tests of
// package routing_test.
type SentUpdate struct {
	Origin string
	Seqno  uint16
	Metric Metric
}

// IsHello reports whether payload is a hello: a message of the newest
// version without entries.
func IsHello(payload []byte) bool {
	return len(payload) == headerLen && payload[0] == wireVersion && payload[1] == 0 && payload[2] == 0
}

// DecodeUpdates returns the updates of a routing message, those of
// attested updates included.
func DecodeUpdates(payload []byte) ([]SentUpdate, error) {
	entries, err := decodeMessage(payload, maxEntriesLimit)
	if err != nil {
		return nil, err
	}
	var out []SentUpdate
	for _, en := range entries {
		if en.kind == kindUpdate || en.kind == kindAttUpdate {
			out = append(out, SentUpdate{en.origin, en.seqno, en.metric})
		}
	}
	return out, nil
}

// RequestMessage encodes a message holding one seqno request.
func RequestMessage(origin string, seqno uint16, hopcnt uint8) []byte {
	return encodeMessage([]entry{{kind: kindRequest, origin: origin, seqno: seqno, hopcnt: hopcnt}})
}

// UpdateMessage encodes one update (no attestation) as a neighbour's message.
func UpdateMessage(origin string, seqno uint16, metric Metric, hops uint16) []byte {
	return encodeMessage([]entry{{kind: kindUpdate, origin: origin, seqno: seqno, metric: metric, hops: hops}})
}
