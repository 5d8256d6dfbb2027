package s3test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The server starts, answers (refusing unsigned requests), and comes
// back after Restart.
func TestStartRestart(t *testing.T) {
	s := Start(t)
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	get := func() (int, string) {
		resp, err := c.Get(Endpoint + "/" + s.NewBucket(t) + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
		t.Errorf("unsigned GET: %d %q, want 403 AccessDenied", code, body)
	}
	s.Stop()
	if _, err := c.Get(Endpoint + "/"); err == nil {
		t.Error("server answers after Stop")
	}
	s.Restart()
	if code, _ := get(); code != http.StatusForbidden {
		t.Errorf("after Restart: %d", code)
	}
}
