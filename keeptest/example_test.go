package keeptest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// In a test, use keeptest.NewCluster(t, 3), which closes the cluster when
// the test ends.
func Example() {
	c := keeptest.Start(3)
	defer c.Close()

	data := []byte("foo")
	loc := locator.New(data)
	first := c.ProbeOrder(loc.Hash)[0]
	first.Script(keeptest.Response{Status: http.StatusServiceUnavailable})

	for attempt := 1; attempt <= 2; attempt++ {
		req, err := http.NewRequest("PUT", first.URL()+"/"+loc.Hash, bytes.NewReader(data))
		if err != nil {
			panic(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("attempt %d: %d %q\n", attempt, resp.StatusCode, body)
	}
	fmt.Println("holders:", len(c.Holders(loc.Hash)))
	fmt.Println("PUTs:", len(c.PutRequests()))
	// Output:
	// attempt 1: 503 ""
	// attempt 2: 200 "acbd18db4cc2f85cedef654fccc4a4d8+3\n"
	// holders: 1
	// PUTs: 2
}
