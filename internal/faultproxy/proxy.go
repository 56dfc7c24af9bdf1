package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault is a kind of fault the proxy injects.
type Fault string

// The faults.
const (
	// InternalError answers 500 InternalError without forwarding (the
	// request body is read first, so the client sees the answer, not a
	// broken pipe).
	InternalError Fault = "500"
	// SlowDown answers 503 SlowDown (S3's throttling) without forwarding.
	SlowDown Fault = "503"
	// Latency holds the request for Rule.Delay, then forwards it.
	Latency Fault = "latency"
	// Trickle forwards the request and sends the response body in pieces
	// of TricklePiece bytes, Rule.Delay apart.
	Trickle Fault = "trickle"
	// ResetRequest reads half of the request body (none of a request
	// without one), then resets the connection (TCP RST): the server never
	// sees the request.
	ResetRequest Fault = "reset-request"
	// ResetResponse forwards the request, then resets the connection after
	// half of the response body; an answer without a body (a PUT's) is lost
	// whole, after the server acted on the request.
	ResetResponse Fault = "reset-response"
	// Restart forwards the request headers and half of its body to the
	// server, then kills the server and starts it again (Options.Restart)
	// and resets the client's connection.
	Restart Fault = "restart"
)

// TricklePiece is the size of the pieces a Trickle fault sends.
const TricklePiece = 4 << 10

// Kind is a kind of S3 request, for Rule.Kind.
type Kind string

// The kinds of requests. Object-level requests are classed by method;
// bucket-level listings (ListObjects, ListObjectVersions) are List, other
// bucket-level requests Other.
const (
	Any    Kind = ""
	Put    Kind = "PUT"
	Get    Kind = "GET"
	Head   Kind = "HEAD"
	Delete Kind = "DELETE"
	Post   Kind = "POST"
	List   Kind = "LIST"
	Other  Kind = "OTHER"
)

// Rule says which requests get a fault.
type Rule struct {
	Fault Fault
	// Kind selects the requests the rule counts; Any counts all.
	Kind Kind
	// Path, when set, narrows them to requests whose URL path contains it
	// (e.g. "/manifests/": the writes of a backup's manifest).
	Path string
	// Nth > 0: fault the Nth request of Kind after the rule was set, and
	// the ones after it until Max faults are injected.
	Nth int
	// Share (0..1], with Nth == 0: fault each request of Kind with this
	// probability, drawn from the proxy's seeded generator.
	Share float64
	// Max bounds the faults this rule injects; 0 means 1 with Nth, no
	// bound with Share.
	Max int
	// Delay is the wait of Latency and the pause between Trickle's pieces.
	Delay time.Duration
}

// Options configures New.
type Options struct {
	// Seed seeds the generator Share rules draw from.
	Seed uint64
	// Restart restarts the server behind the proxy, for the Restart fault
	// (s3server.Server.Restart). Nil: Restart faults fail the test's
	// requests with 502 instead.
	Restart func(context.Context) error
}

// Proxy forwards HTTP requests from its own 127.0.0.1 port to one backend,
// injecting the faults of its rules.
type Proxy struct {
	// Endpoint is the proxy's host:port, URL its http:// base URL.
	Endpoint string
	URL      string

	opts      Options
	rp        *httputil.ReverseProxy
	transport *http.Transport // to the backend
	srv       *http.Server
	ln        net.Listener
	served    chan struct{}

	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*ruleState
	seen     map[Kind]int
	injected map[Fault]int
	errs     []error
}

type ruleState struct {
	Rule
	count, injected int
}

// New starts a proxy on a free 127.0.0.1 port in front of backend
// (host:port). Close stops it.
func New(backend string, opts Options) (*Proxy, error) {
	target, err := url.Parse("http://" + backend)
	if err != nil {
		return nil, fmt.Errorf("fault proxy backend %q: %w", backend, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: %w", err)
	}
	p := &Proxy{
		Endpoint: ln.Addr().String(),
		opts:     opts,
		ln:       ln,
		served:   make(chan struct{}),
		rng:      rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		seen:     map[Kind]int{},
		injected: map[Fault]int{},
	}
	p.URL = "http://" + p.Endpoint
	// NewSingleHostReverseProxy keeps the incoming Host header, which the
	// client signed.
	p.rp = httputil.NewSingleHostReverseProxy(target)
	p.transport = &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	p.rp.Transport = p.transport
	p.rp.FlushInterval = -1 // pass every piece on at once: Trickle depends on it
	p.rp.ErrorHandler = p.backendError
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.served
	return err
}

// Inject replaces the proxy's rules; their counts start at zero.
func (p *Proxy) Inject(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		if r.Max == 0 && r.Nth > 0 {
			r.Max = 1
		}
		p.rules = append(p.rules, &ruleState{Rule: r})
	}
}

// Injected returns how many faults of each kind the proxy injected so far.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[Fault]int, len(p.injected))
	for k, v := range p.injected {
		m[k] = v
	}
	return m
}

// Seen returns how many requests of each kind passed the proxy so far.
func (p *Proxy) Seen() map[Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[Kind]int, len(p.seen))
	for k, v := range p.seen {
		m[k] = v
	}
	return m
}

// Err returns the proxy's own failures (a restart that did not come back),
// which a test should report.
func (p *Proxy) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

// String describes the faults injected and the requests seen, for logs.
func (p *Proxy) String() string {
	inj, seen := p.Injected(), p.Seen()
	var parts []string
	for f, n := range inj {
		parts = append(parts, fmt.Sprintf("%s×%d", f, n))
	}
	sort.Strings(parts)
	var kinds []string
	for k, n := range seen {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("faults [%s], requests [%s]", strings.Join(parts, " "), strings.Join(kinds, ", "))
}

// classify tells the kind of an S3 request in path style (/bucket/key).
func classify(r *http.Request) Kind {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucketLevel := !strings.Contains(strings.TrimSuffix(path, "/"), "/")
	if bucketLevel {
		q := r.URL.Query()
		if r.Method == http.MethodGet && (len(q) == 0 || q.Has("list-type") || q.Has("versions") || q.Has("prefix")) {
			return List
		}
		return Other
	}
	switch r.Method {
	case http.MethodPut:
		return Put
	case http.MethodGet:
		return Get
	case http.MethodHead:
		return Head
	case http.MethodDelete:
		return Delete
	case http.MethodPost:
		return Post
	}
	return Other
}

// pick counts the request against the rules and returns the fault to
// inject, if any: the first rule that fires.
func (p *Proxy) pick(kind Kind, path string) (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[kind]++
	for _, r := range p.rules {
		if (r.Kind != Any && r.Kind != kind) || !strings.Contains(path, r.Path) {
			continue
		}
		r.count++
		if r.Max > 0 && r.injected >= r.Max {
			continue
		}
		fire := false
		switch {
		case r.Nth > 0:
			fire = r.count >= r.Nth
		case r.Share > 0:
			fire = p.rng.Float64() < r.Share
		}
		if fire {
			r.injected++
			p.injected[r.Fault]++
			return r.Fault, r.Delay
		}
	}
	return "", 0
}

// ServeHTTP forwards r, with the fault its rules pick.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, delay := p.pick(classify(r), r.URL.Path)
	switch fault {
	case "":
		p.rp.ServeHTTP(w, r)
	case InternalError, SlowDown:
		_, _ = io.Copy(io.Discard, r.Body)
		writeError(w, fault)
	case Latency:
		if wait(r.Context(), delay) {
			p.rp.ServeHTTP(w, r)
		}
	case Trickle:
		p.rp.ServeHTTP(&trickleWriter{ResponseWriter: w, ctx: r.Context(), delay: delay}, r)
	case ResetRequest:
		if r.ContentLength > 0 {
			_, _ = io.CopyN(io.Discard, r.Body, r.ContentLength/2)
		}
		reset(w)
	case ResetResponse:
		p.rp.ServeHTTP(&cutWriter{ResponseWriter: w, noBody: r.Method == http.MethodHead}, r)
	case Restart:
		p.restart(w, r)
	default:
		http.Error(w, "fault proxy: unknown fault "+string(fault), http.StatusBadGateway)
	}
}

// writeError answers with an S3 error document.
func writeError(w http.ResponseWriter, f Fault) {
	status, code := http.StatusInternalServerError, "InternalError"
	if f == SlowDown {
		status, code = http.StatusServiceUnavailable, "SlowDown"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the fault proxy</Message></Error>`, code)
}

// wait waits d or until ctx ends, and says whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reset takes the connection from the HTTP server and resets it (RST,
// not FIN): the client's read or write fails with "connection reset".
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, as near as it gets
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// backendError answers a request the backend did not answer: 502, as a
// load balancer would, unless the connection is gone already.
func (p *Proxy) backendError(w http.ResponseWriter, r *http.Request, err error) {
	if cw, ok := w.(*cutWriter); ok && cw.cut {
		return
	}
	if r.Context().Err() != nil {
		return
	}
	http.Error(w, "fault proxy: backend: "+err.Error(), http.StatusBadGateway)
}

// trickleWriter sends what it is given in TricklePiece pieces, delay apart.
type trickleWriter struct {
	http.ResponseWriter
	ctx   context.Context
	delay time.Duration
}

func (t *trickleWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		piece := b[:min(len(b), TricklePiece)]
		m, err := t.ResponseWriter.Write(piece)
		n += m
		if err != nil {
			return n, err
		}
		if err := http.NewResponseController(t.ResponseWriter).Flush(); err != nil {
			return n, err
		}
		b = b[len(piece):]
		if len(b) > 0 && !wait(t.ctx, t.delay) {
			return n, t.ctx.Err()
		}
	}
	return n, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (t *trickleWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// cutWriter resets the connection after half of the response body (at once
// when the response has no body).
type cutWriter struct {
	http.ResponseWriter
	noBody bool  // a HEAD request's answer: its Content-Length is not sent
	left   int64 // bytes still to pass before the cut
	cut    bool
}

func (c *cutWriter) WriteHeader(status int) {
	if c.cut {
		return
	}
	var size int64
	if _, err := fmt.Sscan(c.Header().Get("Content-Length"), &size); c.noBody || err != nil || size <= 0 {
		// No body, or one of unknown length: lose the whole answer.
		c.cut = true
		reset(c.ResponseWriter)
		return
	}
	c.left = size / 2
	c.ResponseWriter.WriteHeader(status)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.cut {
		return 0, errCut
	}
	if int64(len(b)) < c.left {
		c.left -= int64(len(b))
		return c.ResponseWriter.Write(b)
	}
	n, _ := c.ResponseWriter.Write(b[:c.left])
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	c.cut = true
	reset(c.ResponseWriter)
	return n, errCut
}

// Flush passes on flushes until the cut.
func (c *cutWriter) Flush() {
	if !c.cut {
		_ = http.NewResponseController(c.ResponseWriter).Flush()
	}
}

var errCut = errors.New("fault proxy: connection reset")

// restart forwards r's headers and half of its body, then restarts the
// server and resets the client's connection once it is back: the client's
// retry finds it up.
func (p *Proxy) restart(w http.ResponseWriter, r *http.Request) {
	half := int64(0)
	if r.ContentLength > 0 {
		half = r.ContentLength / 2
	}
	restarted := make(chan struct{})
	var once sync.Once
	doRestart := func() {
		once.Do(func() {
			defer close(restarted)
			if p.opts.Restart == nil {
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
			defer cancel()
			if err := p.opts.Restart(ctx); err != nil {
				p.mu.Lock()
				p.errs = append(p.errs, fmt.Errorf("restart: %w", err))
				p.mu.Unlock()
			}
			// The old server's connections are dead: a request must
			// not find one idle and fail for it.
			p.transport.CloseIdleConnections()
		})
	}
	if half == 0 {
		doRestart()
		reset(w)
		return
	}
	r.Body = &restartBody{r: io.LimitReader(r.Body, half), restart: doRestart}
	p.rp.ServeHTTP(&holdWriter{ResponseWriter: w, restarted: restarted}, r)
	<-restarted
	reset(w)
}

// restartBody passes on the first half of a body, then restarts the
// server instead of reading further.
type restartBody struct {
	r       io.Reader
	restart func()
}

func (b *restartBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		return n, nil
	}
	if err == io.EOF {
		b.restart()
		return 0, errors.New("fault proxy: server restarted")
	}
	return n, err
}

func (b *restartBody) Close() error { return nil }

// holdWriter swallows what the dying server's request leaves (an error
// answer), so that the client sees only the reset.
type holdWriter struct {
	http.ResponseWriter
	restarted chan struct{}
}

func (h *holdWriter) WriteHeader(int)             {}
func (h *holdWriter) Write(b []byte) (int, error) { return len(b), nil }
