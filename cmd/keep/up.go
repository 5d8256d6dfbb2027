package main

import (
	"context"
	"errors"
	"io"
)

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
