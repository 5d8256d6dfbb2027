package manifest

import (
	"strings"
	"testing"

	"github.com/keepproject/keep/locator"
)

func TestMapBlocks(t *testing.T) {
	text := ". acbd18db4cc2f85cedef654fccc4a4d8+3+Aabcdefabcdefabcdefabcdefabcdefabcdefabcd@12345678+Kzzzzz 37b51d194a7513e45b56f6524f2d51f2+3 0:3:foo 3:3:bar 0:3:again\n./empty d41d8cd98f00b204e9800998ecf8427e+0 0:0:\\056\n"
	m, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	stripped := m.MapBlocks(func(l locator.Locator) locator.Locator { calls++; return l.Unsigned() })
	if calls != 2 {
		t.Errorf("f called %d times, want once per distinct locator (2)", calls)
	}
	want := ". acbd18db4cc2f85cedef654fccc4a4d8+3+Kzzzzz 37b51d194a7513e45b56f6524f2d51f2+3 0:3:again 3:3:bar 0:3:foo\n./empty d41d8cd98f00b204e9800998ecf8427e+0 0:0:\\056\n"
	if got := stripped.Text(); got != want {
		t.Errorf("stripped:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(m.Text(), "+Aabcdef") {
		t.Errorf("MapBlocks changed its receiver: %s", m.Text())
	}
	if m.PortableDataHash() != stripped.PortableDataHash() {
		t.Errorf("portable data hash changed: %s, %s", m.PortableDataHash(), stripped.PortableDataHash())
	}
}
