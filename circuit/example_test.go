package circuit_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// A refusal names the hop that produced it and matches a sentinel, so a
// caller can tell "no such service" from "no route" wherever on the path
// it happened.
func ExampleRefusedError() {
	var err error = &circuit.RefusedError{
		Code: circuit.NoService, Node: "charlie", Dest: "charlie", Service: "web",
		Reason: "nothing listens on web",
	}
	err = fmt.Errorf("fetch report: %w", err)

	var refused *circuit.RefusedError
	fmt.Println(errors.Is(err, circuit.ErrNoService), errors.Is(err, circuit.ErrNoRoute))
	if errors.As(err, &refused) {
		fmt.Println("refused by", refused.Node+":", refused.Code)
	}
	// Output:
	// true false
	// refused by charlie: no such service
}

// The open header is what a circuit's first bytes carry: each relay reads
// it, decrements the hop limit and forwards it.
func ExampleOpen() {
	var wire bytes.Buffer
	open := &circuit.Open{Dest: "charlie", Source: "alpha", Service: "web", HopLimit: 8}
	if err := circuit.WriteOpen(&wire, open); err != nil {
		panic(err)
	}
	got, err := circuit.ReadOpen(&wire, 4096)
	if err != nil {
		panic(err)
	}
	next, err := got.Forward("bravo")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s → %s/%s, hop limit %d at the next hop\n", next.Source, next.Dest, next.Service, next.HopLimit)
	// Output: alpha → charlie/web, hop limit 7 at the next hop
}
