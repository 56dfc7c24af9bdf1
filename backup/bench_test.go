package backup_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/benchutil"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// BenchmarkBackupDisk backs up a VM whose disk is VTPM_BENCH_DISK_MIB MiB
// (default 4096) into a local repository and reports MB/s and the peak
// Go heap during the backup. Set the size smaller for a quick run.
func BenchmarkBackupDisk(b *testing.B) {
	size, err := benchutil.DiskSize()
	if err != nil {
		b.Fatal(err)
	}
	env := simtest.Start(b)
	vm, err := env.CreateVTPMVM(b.Context(), vspheretest.VMOptions{Name: "bench", Seed: 1, DiskSize: size})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		repo := repotest.New(b, repotest.Options{}).Repository
		runtime.GC()
		s := benchutil.StartHeapSampler()
		b.StartTimer()
		start, cpu := time.Now(), benchutil.CPUTime()
		res := backup.New(env.Client, repo, backup.Options{Workers: 2}, nil).BackupVM(b.Context(), vm.VM)
		elapsed, cpu := time.Since(start), benchutil.CPUTime()-cpu
		b.StopTimer()
		peak := s.Stop()
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		b.ReportMetric(float64(res.BytesRead)/elapsed.Seconds()/1e6, "MB/s")
		// The simulator serves the disk from this process: its CPU
		// (TLS, file reads) is in the figure, as the datastore's would be
		// on the same host.
		b.ReportMetric(float64(res.BytesRead)/cpu.Seconds()/1e6, "MB/cpu-s")
		b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "cores-busy")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(benchutil.PeakRSS()/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(res.BytesUploaded)/float64(res.BytesRead), "stored/read")
		b.StartTimer()
	}
	b.SetBytes(size)
}
