package keepclient

import "sync"

// serviceSet holds the client's current service list.
type serviceSet struct {
	mu   sync.Mutex // guards list
	list []Service
}

func newServiceSet(s []Service) *serviceSet {
	return &serviceSet{list: append([]Service(nil), s...)}
}

func (s *serviceSet) get() []Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

func (s *serviceSet) set(l []Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append([]Service(nil), l...)
}
