package noise

// The tests in noise_test.go and vector_test.go are upstream's
// (github.com/flynn/noise v1.1.0), written for gopkg.in/check.v1. This file
// is the small part of that API they use, so that they run unchanged
// under the testing package.

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// NoiseSuite holds upstream's tests; Test runs each of its Test* methods.
type NoiseSuite struct{}

func Test(t *testing.T) {
	v := reflect.ValueOf(NoiseSuite{})
	for i := range v.NumMethod() {
		m := v.Type().Method(i)
		if !strings.HasPrefix(m.Name, "Test") {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			v.Method(i).Call([]reflect.Value{reflect.ValueOf(&C{t})})
		})
	}
}

// C is check.v1's test context.
type C struct{ *testing.T }

// Checker is one of check.v1's checkers: ok reports whether the values
// pass, and the message says why not.
type Checker func(obtained any, args []any) (ok bool, message string)

// Assert fails the test now unless checker passes obtained and args.
func (c *C) Assert(obtained any, checker Checker, args ...any) {
	c.Helper()
	if ok, msg := checker(obtained, args); !ok {
		c.Fatalf("assertion failed: %s", msg)
	}
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return r.IsNil()
	}
	return false
}

// Not passes what checker fails.
func Not(checker Checker) Checker {
	return func(o any, a []any) (bool, string) {
		ok, _ := checker(o, a)
		return !ok, fmt.Sprintf("%#v passes a check it must fail", o)
	}
}

// The checkers upstream's tests use.
var (
	IsNil Checker = func(o any, _ []any) (bool, string) {
		return isNil(o), fmt.Sprintf("%#v is not nil", o)
	}
	NotNil Checker = func(o any, _ []any) (bool, string) {
		return !isNil(o), "value is nil"
	}
	Equals Checker = func(o any, a []any) (bool, string) {
		return o == a[0], fmt.Sprintf("%#v != %#v", o, a[0])
	}
	DeepEquals Checker = func(o any, a []any) (bool, string) {
		return reflect.DeepEqual(o, a[0]), fmt.Sprintf("%#v is not deeply equal to %#v", o, a[0])
	}
	HasLen Checker = func(o any, a []any) (bool, string) {
		n := reflect.ValueOf(o).Len()
		return n == a[0].(int), fmt.Sprintf("length %d, want %d", n, a[0])
	}
)
