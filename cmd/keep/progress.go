package main

import (
	"io"
	"os"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows a byte-count bar (bytes, rate, ETA) on stderr.
type progress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

// progressMode is what --progress and --no-progress asked for.
type progressMode int

const (
	progressAuto progressMode = iota // when stderr is a terminal not receiving the data
	progressOn
	progressOff
)

// newProgress returns a bar on stderr, or one that shows nothing: with
// progressAuto, a bar only when stderr is a terminal and stdout, if
// dataToStdout, is not that same terminal (the bar would draw over the
// data).
func newProgress(stderr, stdout io.Writer, dataToStdout bool, mode progressMode, name string, total int64) *progress {
	if mode == progressOff || mode == progressAuto && !showProgress(stderr, stdout, dataToStdout) {
		return &progress{}
	}
	opts := []mpb.ContainerOption{mpb.WithOutput(stderr), mpb.WithWidth(40)}
	if mode == progressOn {
		opts = append(opts, mpb.WithAutoRefresh()) // draw even where stderr is not a terminal
	}
	p := mpb.New(opts...)
	bar := p.AddBar(total,
		mpb.PrependDecorators(decor.Name(name+" "), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)),
	)
	return &progress{p: p, bar: bar}
}

func showProgress(stderr, stdout io.Writer, dataToStdout bool) bool {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	if o, ok := stdout.(*os.File); ok && dataToStdout && term.IsTerminal(int(o.Fd())) {
		return false
	}
	return true
}

// add records n more bytes done.
func (p *progress) add(n int) {
	if p.bar != nil {
		p.bar.IncrBy(n)
	}
}

// done finishes the bar; aborted leaves it where it stopped.
func (p *progress) done(aborted bool) {
	if p.p == nil {
		return
	}
	if aborted {
		p.bar.Abort(false)
	} else {
		p.bar.SetTotal(-1, true)
	}
	p.p.Wait()
}
