package manifest

import "github.com/keepproject/keep/locator"

// MapBlocks returns a copy of m with every segment's block replaced by
// f of it: to sign a manifest for a reader, or to strip its signatures.
// f is called once per distinct locator text; m is unchanged.
func (m *Manifest) MapBlocks(f func(locator.Locator) locator.Locator) *Manifest {
	out := &Manifest{Files: make([]File, len(m.Files)), Dirs: append([]string(nil), m.Dirs...)}
	done := make(map[string]locator.Locator)
	for i, file := range m.Files {
		segs := make([]Segment, len(file.Segments))
		for j, s := range file.Segments {
			key := s.Block.String()
			l, ok := done[key]
			if !ok {
				l = f(s.Block)
				done[key] = l
			}
			s.Block = l
			segs[j] = s
		}
		out.Files[i] = File{Path: file.Path, Segments: segs}
	}
	return out
}
