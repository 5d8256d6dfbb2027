package keepweb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// screenshotEnv names a file to write a PNG of the directory page to
// (docs/web-directory.png is made this way).
const screenshotEnv = "KEEPWEB_SCREENSHOT"

// TestBrowser drives headless Chromium through the DevTools protocol:
// it opens a directory page with ?api_token= (the cookie redirect),
// follows a link to a subdirectory, downloads a file and the zip by
// clicking their links, and compares the bytes.
func TestBrowser(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no chromium binary found (Debian: apt-get install chromium): browser test skipped")
	}
	f := newFixture(t, fixtureConfig{})
	b := startBrowser(t, bin)
	downloads := t.TempDir()
	b.call(t, "", "Browser.setDownloadBehavior", map[string]any{"behavior": "allowAndName", "downloadPath": downloads, "eventsEnabled": true})
	var target struct{ TargetID string }
	b.call(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	s := attached.SessionID
	b.call(t, s, "Page.enable", nil)
	b.call(t, s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 900, "height": 700, "deviceScaleFactor": 1, "mobile": false})

	// The redirect takes the token out of the address.
	b.call(t, s, "Page.navigate", map[string]any{"url": f.url("") + "?api_token=" + testToken})
	b.waitLoaded(t, s, f.url(""))
	if title := b.eval(t, s, "document.title"); title != "c="+f.id+"/" {
		t.Errorf("title %q", title)
	}
	if path := os.Getenv(screenshotEnv); path != "" {
		b.screenshot(t, s, path)
	}

	b.eval(t, s, `document.querySelector('a[href="./dir/"]').click(); ""`)
	b.waitLoaded(t, s, f.url("dir/"))
	if text := b.eval(t, s, "document.body.innerText"); !strings.Contains(text, "page.html") || !strings.Contains(text, "b.json") {
		t.Errorf("the dir/ page does not list its files:\n%s", text)
	}
	b.call(t, s, "Page.navigate", map[string]any{"url": f.url("")}) // the cookie is the token now
	b.waitLoaded(t, s, f.url(""))

	got := b.download(t, s, downloads, `a[href="./big.bin"]`)
	if !bytes.Equal(got, f.files["big.bin"]) {
		t.Errorf("downloaded big.bin: %d bytes differ from its %d", len(got), len(f.files["big.bin"]))
	}
	checkZip(t, b.download(t, s, downloads, `a.zip`), f.files, f.dirs, "")
}

// chromiumEnv names the Chromium binary TestBrowser must use: with it
// set, a browser that does not run fails the test instead of skipping
// it (CI sets it).
const chromiumEnv = "KEEP_TEST_CHROMIUM"

// findChromium returns the path of a Chromium binary, or "".
func findChromium() string {
	if p := os.Getenv(chromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is a DevTools protocol connection to a headless Chromium. Its
// messages are read in the test's goroutine: events that arrive while
// it waits for something else are queued.
type browser struct {
	ws     *websocket.Conn
	nextID int
	events []cdpMessage
}

// cdpMessage is a DevTools protocol message: a reply (ID) or an event.
type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	SessionID string          `json:"sessionId"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startBrowser starts Chromium headless on a loopback DevTools port and
// connects to it; both end with the test.
func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir="+t.TempDir(), "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group this test started
		<-exited
	})
	found := make(chan string, 1)
	go func() {
		defer close(exited)
		defer cmd.Wait()
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		close(found)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-ctx.Done():
	}
	if wsURL == "" {
		t.Fatal("chromium did not say where its DevTools listen")
	}
	ws, err := websocket.Dial(wsURL, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	ws.MaxPayloadBytes = 64 << 20
	ws.SetDeadline(time.Now().Add(2 * time.Minute)) // hang guard only
	t.Cleanup(func() { ws.Close() })
	return &browser{ws: ws}
}

// call sends a command (to a session, or the browser when session is
// "") and decodes its result into out[0], if given.
func (b *browser) call(t *testing.T, session, method string, params any, out ...any) {
	t.Helper()
	b.nextID++
	msg := map[string]any{"id": b.nextID, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if session != "" {
		msg["sessionId"] = session
	}
	if err := websocket.JSON.Send(b.ws, msg); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	for {
		m := b.receive(t)
		if m.ID != b.nextID {
			continue
		}
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if len(out) > 0 {
			if err := json.Unmarshal(m.Result, out[0]); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// receive reads one message, queueing it if it is an event.
func (b *browser) receive(t *testing.T) cdpMessage {
	t.Helper()
	var m cdpMessage
	if err := websocket.JSON.Receive(b.ws, &m); err != nil {
		t.Fatalf("reading from chromium: %v", err)
	}
	if m.Method != "" {
		b.events = append(b.events, m)
	}
	return m
}

// waitEvent returns the params of the first event named method (of
// session) not yet taken, waiting for it if need be.
func (b *browser) waitEvent(t *testing.T, session, method string, match ...func(json.RawMessage) bool) json.RawMessage {
	t.Helper()
	for i := 0; ; i++ {
		for i < len(b.events) {
			e := b.events[i]
			if e.Method == method && e.SessionID == session && (len(match) == 0 || match[0](e.Params)) {
				b.events = append(b.events[:i], b.events[i+1:]...)
				return e.Params
			}
			i++
		}
		b.receive(t)
		i--
	}
}

// waitLoaded waits until the page has loaded the URL want. (A load
// event may be left from an earlier page, so the address is checked;
// a page that never comes ends the test at the connection's deadline.)
func (b *browser) waitLoaded(t *testing.T, session, want string) {
	t.Helper()
	for {
		b.waitEvent(t, session, "Page.loadEventFired")
		if loc := b.eval(t, session, "location.href"); loc == want {
			return
		}
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as a string.
func (b *browser) eval(t *testing.T, session, expr string) string {
	t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call(t, session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		t.Fatalf("%s: %s", expr, res.ExceptionDetails.Text)
	}
	return fmt.Sprint(res.Result.Value)
}

// download clicks the link selector picks and returns the downloaded
// file's content, once Chromium says it is complete.
func (b *browser) download(t *testing.T, session, dir, selector string) []byte {
	t.Helper()
	b.eval(t, session, fmt.Sprintf(`document.querySelector(%q).click(); ""`, selector))
	var begin struct{ GUID, SuggestedFilename string }
	json.Unmarshal(b.waitEvent(t, "", "Browser.downloadWillBegin"), &begin)
	var done struct{ State string }
	json.Unmarshal(b.waitEvent(t, "", "Browser.downloadProgress", func(p json.RawMessage) bool {
		var pr struct{ GUID, State string }
		json.Unmarshal(p, &pr)
		return pr.GUID == begin.GUID && pr.State != "inProgress"
	}), &done)
	if done.State != "completed" {
		t.Fatalf("download of %s (%s): %s", selector, begin.SuggestedFilename, done.State)
	}
	data, err := os.ReadFile(filepath.Join(dir, begin.GUID))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// screenshot writes a PNG of the page to path.
func (b *browser) screenshot(t *testing.T, session, path string) {
	t.Helper()
	var shot struct{ Data string }
	b.call(t, session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
