package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/keepproject/keep/locator"
)

// maxToken bounds one token of a manifest read by ScanBlocks: a block
// locator with its hints, or a file token with its name.
const maxToken = 1 << 20

// ScanBlocks reads manifest text from r a token at a time and calls fn
// with every block locator of every stream, in order, repeats included,
// without building the manifest: it reads the blocks of manifests of any
// size in constant memory. Each line must be a stream name, block
// locators with sizes, and file tokens, as Parse takes them; the file
// tokens are checked for their shape ("pos:len:name"), not against the
// blocks, so ScanBlocks accepts everything Parse does and yields a
// superset of Blocks (also a block no file uses). Errors are
// *SyntaxError, or fn's error as it returned it.
func ScanBlocks(r io.Reader, fn func(locator.Locator) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxToken+1)
	sc.Split(splitToken)
	s := blockScanner{line: 1}
	for sc.Scan() {
		if err := s.token(sc.Bytes(), fn); err != nil {
			return err
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, errNoNewline):
		return s.err(err)
	case errors.Is(err, bufio.ErrTooLong):
		return s.err(fmt.Errorf("a token longer than %d bytes", maxToken))
	case err != nil:
		return err
	case s.field != 0:
		return s.err(errNoNewline)
	}
	return nil
}

// blockScanner is where ScanBlocks is in the manifest.
type blockScanner struct {
	line, field int // field is the token's index on its line, from 0
	blocks      int // locators on this line
	files       bool
}

func (s *blockScanner) err(err error) error { return &SyntaxError{Line: s.line, Err: err} }

func (s *blockScanner) tokenErr(tok []byte, err error) error {
	return &SyntaxError{Line: s.line, Token: s.field + 1, Text: string(tok), Err: err}
}

// token takes one token with the space or newline that ended it.
func (s *blockScanner) token(tok []byte, fn func(locator.Locator) error) error {
	end := tok[len(tok)-1]
	tok = tok[:len(tok)-1]
	if len(tok) == 0 {
		if end == '\n' && s.field == 0 {
			return s.err(errors.New("empty line"))
		}
		return s.tokenErr(tok, errors.New("empty token (leading, trailing or doubled space)"))
	}
	for _, c := range tok {
		if c < 0x20 {
			return s.tokenErr(tok, fmt.Errorf("unescaped control character %q", c))
		}
	}
	switch {
	case s.field == 0:
		if _, err := parseStreamName(string(tok)); err != nil {
			return s.tokenErr(tok, err)
		}
	case !s.files && bytes.IndexByte(tok, ':') < 0:
		l, err := locator.Parse(string(tok))
		if err == nil && l.Size < 0 {
			err = errors.New("block locator has no size")
		}
		if err != nil {
			return s.tokenErr(tok, err)
		}
		s.blocks++
		if err := fn(l); err != nil {
			return err
		}
	default:
		if s.blocks == 0 {
			return s.tokenErr(tok, errors.New("expected a block locator after the stream name"))
		}
		if bytes.Count(tok, []byte{':'}) < 2 {
			return s.tokenErr(tok, errors.New("a file token is pos:len:name"))
		}
		s.files = true
	}
	s.field++
	if end == '\n' {
		if !s.files {
			return s.err(fmt.Errorf("stream has no %s", map[bool]string{true: "file tokens", false: "block locators"}[s.blocks > 0]))
		}
		*s = blockScanner{line: s.line + 1}
	}
	return nil
}

// splitToken is a bufio.SplitFunc of tokens, each with the space or
// newline after it.
func splitToken(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, " \n"); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errNoNewline
	}
	return 0, nil, nil
}

var errNoNewline = errors.New("missing newline at end of line")
