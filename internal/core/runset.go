package core

import "sync"

// RunSet is a set of run ids, safe for concurrent use: an engine's runs in
// progress in this process, which its Prune must not touch. A run id may be
// held by more than one Run call (a resumed run takes over an earlier id).
type RunSet struct {
	mu  sync.Mutex
	ids map[string]int // id -> number of Run calls holding it
}

// Add puts id in the set and returns the function that takes it out
// ([Options.Track] has this shape).
func (s *RunSet) Add(id string) func() {
	s.mu.Lock()
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	s.ids[id]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ids[id]--; s.ids[id] <= 0 {
			delete(s.ids, id)
		}
	}
}

// Has reports whether a Run call holds id.
func (s *RunSet) Has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id] > 0
}
