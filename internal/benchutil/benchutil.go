// Package benchutil holds what the large-disk benchmarks of backup and
// restore share: the disk size they run at and how they measure memory.
package benchutil

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DiskSizeEnv overrides the benchmarks' disk size, in MiB, for quick runs.
const DiskSizeEnv = "VTPM_BENCH_DISK_MIB"

// DiskSize returns the disk size to benchmark: DiskSizeEnv, else 4 GiB.
func DiskSize() (int64, error) {
	v := os.Getenv(DiskSizeEnv)
	if v == "" {
		return 4 << 30, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number of MiB", DiskSizeEnv, v)
	}
	return n << 20, nil
}

// HeapSampler records the peak of HeapInuse while it runs, to show that
// memory does not grow with the disk size. Sampling every few milliseconds
// can miss a short spike; the pipelines' buffers live for the whole run.
type HeapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

// StartHeapSampler starts sampling.
func StartHeapSampler() *HeapSampler {
	s := &HeapSampler{stop: make(chan struct{})}
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

// Stop ends sampling and returns the peak in bytes.
func (s *HeapSampler) Stop() uint64 {
	close(s.stop)
	s.done.Wait()
	return s.peak
}

// PeakRSS returns the process's peak resident set (VmHWM) in bytes, 0 where
// /proc is not there. It includes everything in the process, the in-process
// vCenter simulator too: an upper bound.
func PeakRSS() float64 {
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

// CPUTime returns the user plus system CPU time this process has used so
// far. On a machine shared with other work, wall-clock throughput says
// more about the neighbours than about the code; bytes per CPU second do
// not.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
