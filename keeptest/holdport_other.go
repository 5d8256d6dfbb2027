//go:build !unix

package keeptest

func holdPort(int) func() { return nil }
