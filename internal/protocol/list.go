package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"reflect"
	"slices"
)

// EncodeList writes items to w as a JSON array, one item at a time, so
// that a list of millions of items is sent without being held whole as
// JSON. The bytes are those of json.Marshal(items): "null" for a nil
// slice.
func EncodeList[T any](w io.Writer, items []T) error {
	if items == nil {
		_, err := io.WriteString(w, "null")
		return err
	}
	return EncodeSeq(w, slices.Values(items))
}

// EncodeSeq writes the items of seq to w as a JSON array, one at a time
// as seq makes them: the bytes of json.Marshal of a non-nil slice of
// them.
func EncodeSeq[T any](w io.Writer, seq iter.Seq[T]) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	bw.WriteByte('[')
	first := true
	for item := range seq {
		if !first {
			bw.WriteByte(',')
		}
		first = false
		buf.Reset()
		if err := enc.Encode(&item); err != nil {
			return err
		}
		// Encode ends each value with a newline; Marshal does not.
		if _, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})); err != nil {
			return err
		}
	}
	bw.WriteByte(']')
	return bw.Flush()
}

// DecodeList reads a JSON array from r and calls each with its items in
// order, one at a time, so that a list of millions of items is received
// without being held whole: what json.NewDecoder(r).Decode(&[]T) would
// accept, with the same items (JSON null is a list of none; an item
// null is a zero T; what follows the array is not read). It stops at
// the first error, of the JSON or of each.
func DecodeList[T any](r io.Reader, each func(T) error) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok := tok.(type) {
	case nil:
		return nil
	case json.Delim:
		if tok != '[' {
			return &json.UnmarshalTypeError{Value: "object", Type: reflect.TypeFor[[]T]()}
		}
	default:
		return &json.UnmarshalTypeError{Value: jsonKind(tok), Type: reflect.TypeFor[[]T]()}
	}
	for dec.More() {
		var it T
		if err := dec.Decode(&it); err != nil {
			return err
		}
		if err := each(it); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing ']'
	return err
}

// jsonKind names the kind of a JSON scalar token as encoding/json's
// errors do.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64, json.Number:
		return "number"
	}
	return fmt.Sprintf("%T", tok)
}
