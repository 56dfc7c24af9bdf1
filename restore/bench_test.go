package restore_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/benchutil"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
	"github.com/vtpm-backup/vtpm-backup/storage/local"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// BenchmarkRestore4GiB restores a VM with a 4 GiB disk (half random data,
// a quarter zeros, a quarter repeated: the fixture's mix) from a local
// repository with 4 MiB chunks into the in-process simulator, and reports
// the throughput and the peak Go heap in use during the restore. Setup
// (creating the VM, backing it up) is not timed. Run it alone:
//
//	go test ./restore -run '^$' -bench Restore4GiB -benchtime 1x
//
// VTPM_BENCH_DISK_MIB overrides the disk size (MiB).
func BenchmarkRestore4GiB(b *testing.B) {
	size, err := benchutil.DiskSize()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	env := simtest.Start(b)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	be, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	repo, err := repository.Init(ctx, be, repository.InitOptions{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	vm := simtest.CreateVTPMVM(b, env, vspheretest.VMOptions{Name: "bench", Seed: 1, DiskSize: size})
	b.Logf("created the %d MiB VM in %s", size>>20, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	res := backup.New(env.Client, repo, backup.Options{Workers: 2}, nil).BackupVM(ctx, vm.VM)
	if res.Err != nil {
		b.Fatal(res.Err)
	}
	b.Logf("backed it up in %s", time.Since(t0).Round(time.Millisecond))
	repo.SetIdentities([]age.Identity{id})
	m := res.Manifest

	b.SetBytes(m.TotalSize())
	b.ResetTimer()
	var peak uint64
	for i := range b.N {
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		sampler := benchutil.StartHeapSampler()
		name := fmt.Sprintf("bench-%d", i)
		plan, err := restore.Preflight(ctx, env.Client, repo, m, restore.Options{Name: name})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := restore.Run(ctx, env.Client, repo, plan)
		b.StopTimer()
		peak = max(peak, sampler.Stop())
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("restored %d MiB in %s: %.0f MB/s; heap in use %d MiB before, peak %d MiB",
			r.Bytes>>20, r.Duration().Round(time.Millisecond), r.MBPerSecond(), base>>20, peak>>20)
		vmRef, err := env.Client.FindVM(ctx, r.MoRef)
		if err == nil {
			err = env.Client.Destroy(ctx, vmRef)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
