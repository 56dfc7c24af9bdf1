package pushgateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vtpm-backup/vtpm-backup/internal/testproc"
)

// EnvBinary names the environment variable that points at a Pushgateway
// binary when it is not on PATH.
const EnvBinary = "VTPM_BACKUP_PUSHGATEWAY"

// binaryNames are the names the binary has: Debian's package, and the
// upstream release.
var binaryNames = []string{"prometheus-pushgateway", "pushgateway"}

// ErrUnavailable means no Pushgateway binary was found.
var ErrUnavailable = errors.New("pushgateway binary unavailable")

// readyTimeout bounds the wait for a started server to answer; it is
// ready in well under a second on an idle machine.
const readyTimeout = 30 * time.Second

// Binary returns the Pushgateway executable: $VTPM_BACKUP_PUSHGATEWAY, else
// the first of its names found on PATH.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %w", ErrUnavailable, EnvBinary, p, err)
		}
		return p, nil
	}
	for _, n := range binaryNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of %s on PATH (apt-get install prometheus-pushgateway)", ErrUnavailable, strings.Join(binaryNames, ", "))
}

// Server is one running Pushgateway process, keeping metrics in memory.
type Server struct {
	// URL is the base URL to push to, http://127.0.0.1:PORT.
	URL string

	proc *testproc.Process
	log  *testproc.Log
	stop sync.Once
}

// InCI reports whether we run in continuous integration, where a missing
// Pushgateway is a failure rather than a reason to skip.
func InCI() bool { return testproc.InCI() }

// StartT starts a Pushgateway for a test and stops it in t.Cleanup. Without
// a binary the test is skipped, except in CI, where it fails.
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.Context())
	if err != nil {
		if errors.Is(err, ErrUnavailable) && !InCI() {
			t.Skipf("Pushgateway tests skipped: %v", err)
		}
		t.Fatalf("start Pushgateway: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start runs a Pushgateway on a free 127.0.0.1 port, without persistence,
// and returns once it reports ready. The caller must call Stop.
func Start(ctx context.Context) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	addr, err := testproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr, log: &testproc.Log{}}
	s.proc, err = testproc.Start(bin, []string{"--web.listen-address=" + addr, "--persistence.file=", "--log.level=warn"}, nil, s.log)
	if err != nil {
		return nil, err
	}
	// The /-/ready endpoint answers 200 once the server is ready.
	if err := s.proc.WaitReady(ctx, readyTimeout, testproc.HTTPReady(s.URL+"/-/ready", func(code int) bool { return code == http.StatusOK })); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop kills the server and waits for it to exit; safe to call twice.
func (s *Server) Stop() { s.stop.Do(s.proc.Kill) }

// Log returns what the server printed, for failure messages.
func (s *Server) Log() string { return s.log.String() }

// Families scrapes the server's /metrics as Prometheus would and parses
// it with the client library's own text parser.
func (s *Server) Families(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", s.URL, resp.Status)
	}
	return ParseText(resp.Body)
}

// ParseText parses the Prometheus text format with the client library's
// parser (expfmt), as node_exporter's textfile collector does.
func ParseText(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return fams, nil
}

// Value returns the value of the gauge or untyped sample of family name
// whose labels include all of labels (name, value pairs), and whether
// exactly one sample matched.
func Value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var found []float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			found = append(found, m.GetGauge().GetValue())
		case m.GetUntyped() != nil:
			found = append(found, m.GetUntyped().GetValue())
		case m.GetCounter() != nil:
			found = append(found, m.GetCounter().GetValue())
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

func hasLabels(m *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}
