package keepstore_test

import (
	"testing"

	"go.uber.org/goleak"

	_ "github.com/keepproject/keep/keepstore/dirvolume" // the tests' servers keep their blocks in directories
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
