package backup_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/repository"
	"github.com/vtpm-backup/vtpm-backup/internal/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
)

// heapSampler records the peak of HeapInuse while running, to show that
// backup memory does not grow with the disk size.
type heapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapInuse)
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) Stop() uint64 {
	close(s.stop)
	s.done.Wait()
	return s.peak
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes; it
// includes the in-process simulator and is an upper bound.
func peakRSS() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		var kb float64
		if n, _ := fmt.Sscanf(line, "VmHWM: %f kB", &kb); n == 1 {
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkBackupDisk backs up a VM whose disk is VTPM_BENCH_DISK_MIB MiB
// (default 4096) into a local repository and reports MB/s and the peak
// Go heap during the backup. Set the size smaller for a quick run.
func BenchmarkBackupDisk(b *testing.B) {
	mib := int64(4096)
	if v := os.Getenv("VTPM_BENCH_DISK_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		mib = n
	}
	env := vspheretest.Start(b)
	vm, err := env.CreateVTPMVM(b.Context(), vspheretest.VMOptions{Name: "bench", Seed: 1, DiskSize: mib << 20})
	if err != nil {
		b.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		be, err := local.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		repo, err := repository.Init(b.Context(), be, repository.InitOptions{Recipients: []string{id.Recipient().String()}})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		s := startHeapSampler()
		b.StartTimer()
		start := time.Now()
		res := backup.New(env.Client, repo, backup.Options{Workers: 2}, nil).BackupVM(b.Context(), vm.VM)
		elapsed := time.Since(start)
		b.StopTimer()
		peak := s.Stop()
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		b.ReportMetric(float64(res.BytesRead)/elapsed.Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(peakRSS()/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(res.BytesUploaded)/float64(res.BytesRead), "stored/read")
		b.StartTimer()
	}
	b.SetBytes(mib << 20)
}
