package offheap

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type record struct {
	hash [16]byte
	n    uint32
	x    [2]struct{ a, b uint16 }
}

// Records in mapped memory start zero, keep what is written through
// collections, and the heap does not grow by their size.
func TestMake(t *testing.T) {
	const n = 1 << 20 // 28 MiB of records
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, free, err := Make[record](n)
	if err != nil {
		t.Fatal(err)
	}
	defer free()
	if len(s) != n {
		t.Fatalf("len %d", len(s))
	}
	for i := range s {
		if s[i] != (record{}) {
			t.Fatalf("record %d not zero", i)
		}
		s[i].n = uint32(i)
		s[i].hash[15] = byte(i)
		s[i].x[1].b = uint16(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for i := range s {
		if s[i].n != uint32(i) || s[i].hash[15] != byte(i) || s[i].x[1].b != uint16(i) || s[i].x[0].a != 0 {
			t.Fatalf("record %d: %+v", i, s[i])
		}
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("the heap grew by %d bytes", grew)
	}
	if s, free, err := Make[record](0); s != nil || err != nil {
		t.Errorf("Make(0): %v, %v", s, err)
	} else {
		free()
	}
}

func TestMakeRefusesPointers(t *testing.T) {
	for name, make := range map[string]func(){
		"pointer":         func() { Make[*int](1) },
		"string":          func() { Make[string](1) },
		"slice in struct": func() { Make[struct{ b []byte }](1) },
		"map in array":    func() { Make[[2]map[int]int](1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			make()
		})
	}
}
