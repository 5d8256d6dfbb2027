package protocol

import "testing"

func TestIDs(t *testing.T) {
	for _, tt := range []struct {
		s         string
		uuid, pdh bool
	}{
		{"zzzzz-4zz18-012345678901234", true, false},
		{"zzzzz-4zz18-01234567890123", false, false},
		{"ZZZZZ-4zz18-012345678901234", false, false},
		{"acbd18db4cc2f85cedef654fccc4a4d8+3", false, true},
		{"acbd18db4cc2f85cedef654fccc4a4d8", false, false},
		{"acbd18db4cc2f85cedef654fccc4a4d8+3+A1@2", false, false},
		{"my results", false, false},
	} {
		if IsUUID(tt.s) != tt.uuid || IsPDH(tt.s) != tt.pdh {
			t.Errorf("%q: uuid %v, pdh %v", tt.s, IsUUID(tt.s), IsPDH(tt.s))
		}
	}
}
