package s3server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"

	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Region is the region versitygw answers for by default.
const Region = "us-east-1"

// readyTimeout bounds the wait for a started server to answer; it is ready in
// about 0.1 s on an idle machine, much later on a loaded CI runner.
const readyTimeout = 30 * time.Second

// Options configures Start.
type Options struct {
	// Dir holds the server's data and versions directories. Empty: a new
	// temporary directory, removed by Stop.
	Dir string
	// Binary is the versitygw executable. Empty: see Binary.
	Binary string
}

// Server is one running versitygw process.
type Server struct {
	// Endpoint is host:port, as minio-go wants it.
	Endpoint string
	// URL is the plain-HTTP base URL, http://host:port.
	URL string
	// AccessKey and SecretKey are random per server; the server checks
	// SigV4 signatures against them.
	AccessKey string
	SecretKey string
	// Region is the region to sign for.
	Region string

	bin     string
	dir     string
	log     *syncBuffer
	tempDir string // removed by Stop when Start created it
	stop    sync.Once

	mu   sync.Mutex // guards proc, which Restart replaces
	proc *process
}

// process is one run of the versitygw executable.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// Start runs a versitygw on a free 127.0.0.1 port and returns once it
// answers HTTP requests. The caller must call Stop. ctx bounds the start
// (including a first build of the binary), not the life of the server.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(ctx); err != nil {
			return nil, err
		}
	}
	dir, tempDir := opts.Dir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "vtpm-backup-s3server-")
		if err != nil {
			return nil, fmt.Errorf("s3 server directory: %w", err)
		}
		dir, tempDir = d, d
	}
	for _, d := range []string{filepath.Join(dir, "data"), filepath.Join(dir, "versions")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("s3 server directory: %w", err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  fmt.Sprintf("127.0.0.1:%d", port),
		AccessKey: "AK" + randomHex(9),
		SecretKey: randomHex(20),
		Region:    Region,
		bin:       bin,
		dir:       dir,
		log:       &syncBuffer{},
		tempDir:   tempDir,
	}
	s.URL = "http://" + s.Endpoint
	p, err := s.exec()
	if err != nil {
		s.removeTemp()
		return nil, err
	}
	s.proc = p
	if err := s.waitReady(ctx, p); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// exec starts the versitygw process on the server's port, directory and keys.
func (s *Server) exec() (*process, error) {
	dir := s.dir
	// Keys go through the environment rather than argv, where any local
	// user could read them in the process listing.
	cmd := exec.Command(s.bin,
		"--port", s.Endpoint, "--quiet",
		"posix", "--versioning-dir", filepath.Join(dir, "versions"), filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Restart kills the server (SIGKILL: requests in flight are cut off, as by
// a crash or a reboot) and starts it again on the same port, with the same
// data directory and keys, returning once it answers. Clients keep their
// endpoint and credentials. It is for fault-injection tests.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.done
	p, err := s.exec()
	if err != nil {
		return err
	}
	s.proc = p
	return s.waitReady(ctx, p)
}

// waitReady polls until the server answers any HTTP response (an anonymous
// request is refused with 403, which proves it is up), the process exits,
// or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("versitygw exited before answering (%v): %s", p.waitErr, strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			return fmt.Errorf("versitygw on %s did not answer within %s: %w", s.Endpoint, readyTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// PID returns the server's process ID.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.cmd.Process.Pid
}

// Stop kills the server, waits for it to exit and removes the temporary
// directory Start created. It is safe to call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = s.proc.cmd.Process.Kill()
		<-s.proc.done
		s.removeTemp()
	})
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}

// Log returns what the server printed so far, for test failure messages.
func (s *Server) Log() string { return s.log.String() }

// Client returns a minio-go client for the server's root account.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
}

// CreateBucket creates a bucket, with Object Lock (and hence versioning)
// enabled when objectLock is set.
func (s *Server) CreateBucket(ctx context.Context, name string, objectLock bool) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: objectLock}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// Env returns the environment lines (KEY=value) that point the AWS
// credential chain at this server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// syncBuffer collects the server's output; the exec package writes to it
// from its own goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep memory bounded on a chatty server
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
