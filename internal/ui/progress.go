package ui

import (
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress shows the progress of long operations (disk streaming, restore
// uploads). Call Wait once all bars are Done, before printing anything else
// to the same terminal.
type Progress interface {
	// NewBar starts a bar for total bytes; total may be 0 when unknown yet
	// (see Bar.SetTotal).
	NewBar(name string, total int64) Bar
	// Wait blocks until every bar is drawn for the last time.
	Wait()
}

// Bar is one progress bar, counting bytes. Its methods are safe for
// concurrent use.
type Bar interface {
	// Add counts n more bytes done.
	Add(n int64)
	// SetTotal changes the expected total.
	SetTotal(total int64)
	// Done finishes the bar: completed when err is nil, aborted otherwise.
	// Calls after the first are ignored.
	Done(err error)
}

// NewProgress returns mpb bars drawn on w when enabled is set and w is an
// interactive terminal, and a no-op otherwise (progress bars in a cron log
// are noise; --json and --no-progress turn them off).
func NewProgress(w io.Writer, enabled bool) Progress {
	if !enabled || !IsTerminal(w) {
		return NoProgress()
	}
	return newBars(w)
}

// IsTerminal reports whether w is a character device such as a terminal.
// (It cannot tell a terminal from /dev/null; bars sent there are harmless.)
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}

// NoProgress returns a Progress that shows nothing.
func NoProgress() Progress { return noProgress{} }

type noProgress struct{}

func (noProgress) NewBar(string, int64) Bar { return noBar{} }
func (noProgress) Wait()                    {}

type noBar struct{}

func (noBar) Add(int64)      {}
func (noBar) SetTotal(int64) {}
func (noBar) Done(error)     {}

// bars draws with mpb: name, bytes done of total, average rate and ETA.
type bars struct {
	p *mpb.Progress
}

func newBars(w io.Writer, opts ...mpb.ContainerOption) *bars {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w)}, opts...)
	return &bars{p: mpb.New(opts...)}
}

func (b *bars) NewBar(name string, total int64) Bar {
	bar := b.p.AddBar(total,
		mpb.PrependDecorators(
			decor.Name(name, decor.WCSyncSpaceR),
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace),
			// One column ends as "done" or "failed" in place of the ETA; a
			// separate abort column left the ETA's "0s" glued to "failed".
			decor.OnAbort(decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), "done"), "failed"),
		),
	)
	return &mpbBar{bar: bar}
}

func (b *bars) Wait() { b.p.Wait() }

type mpbBar struct {
	bar  *mpb.Bar
	once sync.Once
}

func (m *mpbBar) Add(n int64) { m.bar.IncrInt64(n) }

func (m *mpbBar) SetTotal(total int64) { m.bar.SetTotal(total, false) }

func (m *mpbBar) Done(err error) {
	m.once.Do(func() {
		if err != nil {
			m.bar.Abort(false)
			return
		}
		// Complete at whatever was counted: a total that was an estimate
		// must not leave the bar (and Wait) hanging.
		m.bar.SetTotal(-1, true)
	})
}
