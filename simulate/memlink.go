package simulate

import "fmt"

// newMemBackend returns the in-memory backend.
func newMemBackend(seed uint64) (backend, error) {
	return nil, fmt.Errorf("simulate: backend %q: in-memory links are not available yet", BackendMem)
}
