package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// EncodeList writes what json.Marshal writes, item by item.
func TestEncodeListIsMarshal(t *testing.T) {
	for name, items := range map[string][]PullItem{
		"nil":   nil,
		"empty": {},
		"some": {
			{Locator: "acbd18db4cc2f85cedef654fccc4a4d8+3", Servers: []string{"http://a:1", "https://b<&>"}, MountUUID: "zzzzz-nyw5e-000000000000000"},
			{Locator: "x\n\"y\u2028"},
			{},
		},
	} {
		var got bytes.Buffer
		if err := EncodeList(&got, items); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(items)
		if got.String() != string(want) {
			t.Errorf("%s: EncodeList %s, json.Marshal %s", name, got.String(), want)
		}
	}
}

// DecodeList accepts what decoding the whole list accepts, with the same
// items, and refuses what it refuses.
func TestDecodeListIsDecode(t *testing.T) {
	for _, in := range []string{
		`null`, ` [] `, `[null]`, `[{}]`, `[{"locator":"a","block_mtime":5,"mount_uuid":"m"},{"LOCATOR":"b","other":[1,{}]}] trailing`,
		`[{"locator":"a"},null,{"mount_uuid":"m"}]`,
		``, `{}`, `"x"`, `5`, `true`, `[`, `[{"locator":"a"}`, `[{"locator":"a"},]`, `[1]`, `[{"locator":5}]`, `[{"block_mtime":"x"}]`, `]`, `[}`,
	} {
		var want []TrashItem
		wantErr := json.NewDecoder(strings.NewReader(in)).Decode(&want)
		var got []TrashItem
		err := DecodeList(strings.NewReader(in), func(it TrashItem) error {
			got = append(got, it)
			return nil
		})
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%q: DecodeList error %v, Decode error %v", in, err, wantErr)
			continue
		}
		if err == nil && len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: DecodeList %+v, Decode %+v", in, got, want)
		}
	}
	// A list that is not an array is refused as Decode refuses it.
	err := DecodeList(strings.NewReader(`{"a":1}`), func(PullItem) error { return nil })
	if err == nil || err.Error() != "json: cannot unmarshal object into Go value of type []protocol.PullItem" {
		t.Errorf("object: %v", err)
	}
}

// DecodeList stops at each's first error, and returns it.
func TestDecodeListStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := DecodeList(strings.NewReader(`[{},{},{}`), func(TrashItem) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("%d items, error %v", n, err)
	}
}

// FuzzDecodeList: DecodeList and a whole-list Decode agree on every input.
func FuzzDecodeList(f *testing.F) {
	f.Add(`[{"locator":"a","servers":["http://x"],"mount_uuid":"m"}]`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, in string) {
		var want []PullItem
		wantErr := json.NewDecoder(strings.NewReader(in)).Decode(&want)
		var got []PullItem
		err := DecodeList(strings.NewReader(in), func(it PullItem) error {
			got = append(got, it)
			return nil
		})
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: DecodeList error %v, Decode error %v", in, err, wantErr)
		}
		if err == nil && len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: DecodeList %+v, Decode %+v", in, got, want)
		}
	})
}
