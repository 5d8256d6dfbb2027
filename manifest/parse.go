package manifest

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/keepproject/keep/locator"
)

// SyntaxError is the error Parse returns for text that is not a valid
// manifest. Its message names the line and token, e.g.
//
//	manifest: line 2: token 3 "0:9:foo": range 0:9 is beyond the 3 bytes of the stream's blocks
type SyntaxError struct {
	// Line is the 1-based line number.
	Line int
	// Token is the 1-based position of the offending token in the line,
	// or 0 when the problem is the line as a whole.
	Token int
	// Text is the offending token as written (not unescaped).
	Text string
	// Err says what is wrong.
	Err error
}

// Error formats e as "manifest: line L: token T \"text\": reason".
func (e *SyntaxError) Error() string {
	if e.Token == 0 {
		return fmt.Sprintf("manifest: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("manifest: line %d: token %d %s: %v", e.Line, e.Token, quote(e.Text), e.Err)
}

// Unwrap returns e.Err.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Parse parses manifest text strictly. Every line must end in "\n" and
// consist of single-space-separated tokens: a stream name ("." or
// "./dir/sub"), one or more block locators with sizes, then one or more
// pos:len:name file tokens. Names may use \ooo and \\ escapes; a file
// name may contain "/"; a path listed more than once gets its segments
// concatenated in order; the name "." with length 0 marks an empty
// directory. The empty string is the empty manifest.
//
// Errors are *SyntaxError.
func Parse(text string) (*Manifest, error) {
	m := &Manifest{}
	if text == "" {
		return m, nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, &SyntaxError{Line: strings.Count(text, "\n") + 1, Err: errors.New("missing newline at end of line")}
	}
	p := parser{
		m:     m,
		index: make(map[string]int),
		dirs:  make(map[string]bool),
		tree:  newTree(),
	}
	for n := 1; text != ""; n++ {
		i := strings.IndexByte(text, '\n')
		p.lineNo = n
		if err := p.parseLine(text[:i]); err != nil {
			return nil, err
		}
		text = text[i+1:]
	}
	return m, nil
}

type parser struct {
	m      *Manifest
	index  map[string]int  // path -> index in m.Files
	dirs   map[string]bool // paths in m.Dirs
	tree   tree
	lineNo int

	// Per line: the stream's blocks and the offset where each one ends.
	blocks []locator.Locator
	ends   []int64
}

func (p *parser) lineErr(format string, args ...any) error {
	return &SyntaxError{Line: p.lineNo, Err: fmt.Errorf(format, args...)}
}

func (p *parser) tokenErr(i int, tok string, err error) error {
	return &SyntaxError{Line: p.lineNo, Token: i + 1, Text: tok, Err: err}
}

func (p *parser) parseLine(line string) error {
	if line == "" {
		return p.lineErr("empty line")
	}
	tokens := strings.Split(line, " ")
	for i, tok := range tokens {
		if tok == "" {
			return p.tokenErr(i, tok, errors.New("empty token (leading, trailing or doubled space)"))
		}
		for j := 0; j < len(tok); j++ {
			if tok[j] < 0x20 {
				return p.tokenErr(i, tok, fmt.Errorf("unescaped control character %q", tok[j]))
			}
		}
	}

	dir, err := parseStreamName(tokens[0])
	if err != nil {
		return p.tokenErr(0, tokens[0], err)
	}

	// Locators never contain ':', file tokens always do.
	p.blocks, p.ends = p.blocks[:0], p.ends[:0]
	var total int64
	i := 1
	for ; i < len(tokens) && !strings.Contains(tokens[i], ":"); i++ {
		l, err := locator.Parse(tokens[i])
		if err != nil {
			return p.tokenErr(i, tokens[i], err)
		}
		if l.Size < 0 {
			return p.tokenErr(i, tokens[i], errors.New("block locator has no size"))
		}
		total += l.Size
		p.blocks = append(p.blocks, l)
		p.ends = append(p.ends, total)
	}
	if len(p.blocks) == 0 {
		if i == len(tokens) {
			return p.lineErr("stream %s has no block locators", quote(tokens[0]))
		}
		return p.tokenErr(i, tokens[i], errors.New("expected a block locator after the stream name"))
	}
	if i == len(tokens) {
		return p.lineErr("stream %s has no file tokens", quote(tokens[0]))
	}
	for ; i < len(tokens); i++ {
		if err := p.parseFileToken(dir, tokens[i], total); err != nil {
			return p.tokenErr(i, tokens[i], err)
		}
	}
	return nil
}

// parseStreamName returns the directory a stream name stands for: "" for
// ".", "a/b" for "./a/b".
func parseStreamName(tok string) (string, error) {
	s, err := unescape(tok)
	if err != nil {
		return "", err
	}
	if s == "." {
		return "", nil
	}
	dir, ok := strings.CutPrefix(s, "./")
	if !ok {
		return "", fmt.Errorf("stream name %s is not \".\" and does not start with \"./\"", quote(s))
	}
	if err := checkPath(dir); err != nil {
		return "", fmt.Errorf("stream name %s: directory %v", quote(s), err)
	}
	return dir, nil
}

func (p *parser) parseFileToken(dir, tok string, total int64) error {
	posText, rest, ok1 := strings.Cut(tok, ":")
	lenText, escName, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return errors.New("expected a pos:len:name file token")
	}
	pos, err := parseNumber(posText)
	if err != nil {
		return fmt.Errorf("position %v", err)
	}
	n, err := parseNumber(lenText)
	if err != nil {
		return fmt.Errorf("length %v", err)
	}
	if pos > total || n > total-pos {
		return fmt.Errorf("range %s:%s is beyond the %d bytes of the stream's blocks", posText, lenText, total)
	}
	name, err := unescape(escName)
	if err != nil {
		return err
	}
	if name == "." {
		if n != 0 {
			return errors.New("file name \".\" (empty directory marker) with nonzero length")
		}
		if dir != "" && !p.dirs[dir] {
			if err := p.tree.addDir(dir); err != nil {
				return err
			}
			p.dirs[dir] = true
			p.m.Dirs = append(p.m.Dirs, dir)
		}
		return nil
	}
	if err := checkPath(name); err != nil {
		return fmt.Errorf("file name %v", err)
	}
	path := name
	if dir != "" {
		path = dir + "/" + name
	}
	fi, ok := p.index[path]
	if !ok {
		if err := p.tree.addFile(path); err != nil {
			return err
		}
		fi = len(p.m.Files)
		p.index[path] = fi
		p.m.Files = append(p.m.Files, File{Path: path})
	}
	f := &p.m.Files[fi]

	// Cut the stream range pos..pos+n at block boundaries.
	b := sort.Search(len(p.ends), func(j int) bool { return p.ends[j] > pos })
	for ; n > 0; b++ {
		start := p.ends[b] - p.blocks[b].Size
		take := min(n, p.ends[b]-pos)
		f.Segments = appendSegment(f.Segments, Segment{Block: p.blocks[b], Offset: pos - start, Length: take})
		pos += take
		n -= take
	}
	return nil
}

// parseNumber parses a non-negative decimal number.
func parseNumber(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("is empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%s is not a decimal number", quote(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is too large", quote(s))
	}
	return n, nil
}

// unescape decodes the \ooo (three octal digits, at most \377) and \\
// escapes of a manifest name.
func unescape(s string) (string, error) {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			b = append(b, '\\')
			i++
			continue
		}
		if i+3 >= len(s) || !isOctal(s[i+1]) || !isOctal(s[i+2]) || !isOctal(s[i+3]) || s[i+1] > '3' {
			end := min(i+4, len(s))
			return "", fmt.Errorf("bad escape %q (want \\ooo up to \\377, or \\\\)", s[i:end])
		}
		b = append(b, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
		i += 3
	}
	return string(b), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
