//go:build linux

package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

var (
	scaleVMs  = flag.Int("scale-vms", 0, "TestScaleMemory: back up this many small vTPM VMs with --parallel 8 into S3 while audit runs (0 skips it; make scaletest runs 50)")
	scaleMax  = flag.Int("scale-max-rss-mib", 256, "TestScaleMemory: the peak resident memory, MiB, the backup process must stay under")
	scaleArgs = flag.String("scale-backup-flags", "", "TestScaleMemory: more backup flags, space-separated (e.g. --max-memory 64MiB)")
)

// TestScaleMemory is issue 13's scale case: `backup --all --vtpm-only
// --parallel 8` of -scale-vms small vTPM VMs into the S3 repository while
// `audit` runs again and again beside it. Every VM's manifest must be
// written, and the backup process's peak resident set (getrusage of the
// child: everything the process ever held, not a sample) must stay under
// -scale-max-rss-mib. It runs only with -scale-vms: a memory figure is no
// pass/fail criterion of `make test` on a shared machine.
func TestScaleMemory(t *testing.T) {
	n := *scaleVMs
	if n == 0 {
		t.Skip("run with -scale-vms N (make scaletest)")
	}
	srv := s3server.StartT(t)
	if err := srv.CreateBucket(t.Context(), "vtpm", false); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	repo := "s3+http://" + srv.Endpoint + "/vtpm/scale"
	identity := filepath.Join(t.TempDir(), "identity.txt")
	if _, stderr, code := cli(t, "init", "--repo", repo, "--generate-identity", identity); code != exitOK {
		t.Fatalf("init: %s", stderr)
	}
	env := simtest.Start(t)
	for i := range n {
		simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: fmt.Sprintf("small-%02d", i), Seed: uint64(100 + i), DiskSize: 16 << 20})
	}
	base := append([]string{"--json", "--no-progress", "--repo", repo}, vcArgs(env)...)

	done := make(chan struct{})
	var audits []measured
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			audits = append(audits, runMeasured(t, "--json", "--repo", repo, "audit"))
		}
	}()
	start := time.Now()
	bk := runMeasured(t, append(append(base, "backup", "--all", "--vtpm-only", "--parallel", "8"), strings.Fields(*scaleArgs)...)...)
	elapsed := time.Since(start)
	close(done)
	wg.Wait()
	if bk.err != nil {
		t.Fatalf("backup: %v\n%s", bk.err, tail(bk.stderr, 2000))
	}
	var auditPeak int64
	for _, a := range audits {
		// Exit 3: not ready (no vCenter to check the keys on), a verdict.
		if ee, ok := a.err.(*exec.ExitError); a.err != nil && (!ok || ee.ExitCode() != exitNotReady) {
			t.Errorf("audit during the backup: %v\n%s", a.err, tail(a.stderr, 2000))
		}
		auditPeak = max(auditPeak, a.maxRSS)
	}
	r, err := (&repoFlags{URL: repo}).open(t.Context(), clock.Real())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cat, err := repository.LoadCatalog(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(cat.VMs()); got != n || cat.Len() != n {
		t.Errorf("%d manifests of %d VMs written, want one for each of %d VMs", cat.Len(), got, n)
	}
	t.Logf("%d VMs at --parallel 8 into S3 in %s: backup peak RSS %d MiB; %d audits beside it, peak RSS %d MiB",
		n, elapsed.Round(time.Millisecond), bk.maxRSS>>20, len(audits), auditPeak>>20)
	if bk.maxRSS > int64(*scaleMax)<<20 {
		t.Errorf("backup peak RSS %d MiB, over %d MiB", bk.maxRSS>>20, *scaleMax)
	}
}

// measured is a finished child run of vtpm-backup and its peak RSS.
type measured struct {
	stdout, stderr string
	err            error
	maxRSS         int64 // bytes
}

// runMeasured runs vtpm-backup args in a child process (the test binary as
// main) and returns its output and its peak resident set from getrusage.
// The child gets the environment without the GOMEMLIMIT=off of TestMain,
// so it sets its memory limit as a real run does.
func runMeasured(t *testing.T, args ...string) measured {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, asMainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	m := measured{stdout: stdout.String(), stderr: stderr.String(), err: err}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.maxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
