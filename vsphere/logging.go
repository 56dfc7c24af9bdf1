package vsphere

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/soap"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
)

// soapLogger logs every SOAP call at debug level: the method, its duration
// and its fault. Never the request or response bodies: a Login carries the
// password, and session cookies are credentials too.
type soapLogger struct {
	next soap.RoundTripper
	log  *slog.Logger
	clk  clock.Clock
}

func (s *soapLogger) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	start := s.clk.Now()
	err := s.next.RoundTrip(ctx, req, res)
	attrs := []slog.Attr{slog.String("method", soapMethod(req)), slog.Duration("duration", s.clk.Now().Sub(start))}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "vSphere call", attrs...)
	return err
}

// soapMethod names the method of a request body, e.g. *methods.LoginBody is
// "Login".
func soapMethod(req soap.HasFault) string {
	name := fmt.Sprintf("%T", req)
	name = name[strings.LastIndexByte(name, '.')+1:]
	return strings.TrimSuffix(name, "Body")
}

// logTransfer logs one datastore HTTP request at debug level, when its
// answer came (and for a download again when its body is closed, with the
// bytes read). It logs the method, host, datastore and path, never the
// cookies or ticket that authorise the request.
func (c *Client) logTransfer(ctx context.Context, method string, u *url.URL, start time.Time, res *http.Response, err error) *http.Response {
	if c.log == nil || !c.log.Enabled(ctx, slog.LevelDebug) {
		return res
	}
	attrs := []slog.Attr{
		slog.String("method", method), slog.String("host", u.Host),
		slog.String("datastore", u.Query().Get("dsName")), slog.String("path", strings.TrimPrefix(u.Path, "/folder/")),
		slog.Duration("duration", c.now().Sub(start)),
	}
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "datastore transfer", append(attrs, slog.String("error", err.Error()))...)
		return res
	}
	attrs = append(attrs, slog.Int("status", res.StatusCode), slog.Int64("content_length", res.ContentLength))
	c.log.LogAttrs(ctx, slog.LevelDebug, "datastore transfer", attrs...)
	if method == http.MethodGet && res.StatusCode < 300 {
		res.Body = &loggedBody{ReadCloser: res.Body, c: c, ctx: ctx, attrs: attrs[:4], start: start}
	}
	return res
}

// loggedBody logs a download's bytes and total duration when closed.
type loggedBody struct {
	io.ReadCloser
	c     *Client
	ctx   context.Context
	attrs []slog.Attr
	start time.Time
	n     int64
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *loggedBody) Close() error {
	err := b.ReadCloser.Close()
	attrs := append(append([]slog.Attr(nil), b.attrs...), slog.Int64("bytes", b.n), slog.Duration("duration", b.c.now().Sub(b.start)))
	b.c.log.LogAttrs(b.ctx, slog.LevelDebug, "datastore download closed", attrs...)
	return err
}

// now reads the client's clock (the system clock for a Client built by
// hand in tests).
func (c *Client) now() time.Time {
	if c.clk == nil {
		return clock.Real().Now()
	}
	return c.clk.Now()
}
