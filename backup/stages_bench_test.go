package backup

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/vtpm-backup/vtpm-backup/internal/benchutil"
	"github.com/vtpm-backup/vtpm-backup/internal/s3server"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/storage/s3"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// stageDataSize is how much of the fixture disk the CPU stages run over:
// 32 chunks of the fixture's mix (half random, a quarter zeros, a quarter
// one repeated region), enough to cycle through every kind.
const stageDataSize = 128 << 20

// stageChunks returns the fixture disk's first stageDataSize bytes cut into
// 4 MiB chunks.
func stageChunks(b *testing.B) [][]byte {
	b.Helper()
	data, err := io.ReadAll(vspheretest.NewDiskContent(1, stageDataSize))
	if err != nil {
		b.Fatal(err)
	}
	var chunks [][]byte
	for off := 0; off < len(data); off += 4 << 20 {
		chunks = append(chunks, data[off:off+4<<20])
	}
	return chunks
}

// BenchmarkStage measures each stage of the backup pipeline alone, on one
// core, over the fixture disk's data (issue 11: what bounds a full
// backup?). MB/s is of plaintext read by the stage, whatever it skips:
//
//   - read: the disk over the simulator's datastore file service (TLS),
//     through vsphere.ChunkReader, to nowhere (VTPM_BENCH_DISK_MIB, default
//     4096: the disk it creates);
//   - zero: repository.IsZero on every chunk;
//   - sha256: the chunk ID of every chunk (the whole-file hash costs the
//     same again);
//   - zstd: the ChunkWriter's encoder (SpeedFastest) on the non-zero chunks;
//     zstd-skip: the same after a cheap incompressibility probe;
//   - age: encryption of the compressed chunks to one X25519 recipient;
//   - store-local, store-s3: PutIfAbsent of the stored objects to a local
//     directory (with its fsyncs) and to versitygw;
//   - pipeline: everything but the read, through the backup pipeline with
//     2 workers into a local repository.
//
// Run it alone: go test ./backup -run '^$' -bench Stage -benchtime 3x
func BenchmarkStage(b *testing.B) {
	b.Run("read", benchStageRead)
	chunks := stageChunks(b)
	nonZero := make([][]byte, 0, len(chunks))
	for _, c := range chunks {
		if !repository.IsZero(c) {
			nonZero = append(nonZero, c)
		}
	}
	b.Run("zero", func(b *testing.B) {
		stageLoop(b, chunks, func(c []byte) { repository.IsZero(c) })
	})
	b.Run("sha256", func(b *testing.B) {
		stageLoop(b, chunks, func(c []byte) { sha256.Sum256(c) })
	})
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	zbuf := make([]byte, 0, 5<<20)
	var compressed [][]byte
	b.Run("zstd", func(b *testing.B) {
		stageLoop(b, nonZero, func(c []byte) { zbuf = enc.EncodeAll(c, zbuf[:0]) })
	})
	for _, c := range nonZero {
		compressed = append(compressed, enc.EncodeAll(c, nil))
	}
	b.Run("zstd-skip", func(b *testing.B) {
		stageLoop(b, nonZero, func(c []byte) {
			if compressible(c) {
				zbuf = enc.EncodeAll(c, zbuf[:0])
			}
		})
	})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	var stored [][]byte
	b.Run("age", func(b *testing.B) {
		stageLoop(b, compressed, func(c []byte) {
			out.Reset()
			w, err := age.Encrypt(&out, id.Recipient())
			if err == nil {
				_, err = w.Write(c)
			}
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	})
	for _, c := range compressed {
		out.Reset()
		w, _ := age.Encrypt(&out, id.Recipient())
		_, _ = w.Write(c)
		_ = w.Close()
		stored = append(stored, bytes.Clone(out.Bytes()))
	}
	b.Run("store-local", func(b *testing.B) {
		benchStageStore(b, repotest.New(b, repotest.Options{}).Backend, stored)
	})
	b.Run("store-s3", func(b *testing.B) {
		benchStageStore(b, stageS3Backend(b), stored)
	})
	b.Run("pipeline", func(b *testing.B) { benchStagePipeline(b, chunks) })
}

// stageLoop runs f over every chunk b.N times and reports MB/s of the
// chunks' plaintext.
func stageLoop(b *testing.B, chunks [][]byte, f func([]byte)) {
	b.Helper()
	var total int64
	for _, c := range chunks {
		total += int64(len(c))
	}
	b.SetBytes(total)
	b.ResetTimer()
	cpu := benchutil.CPUTime()
	for range b.N {
		for _, c := range chunks {
			f(c)
		}
	}
	reportCPU(b, total*int64(b.N), benchutil.CPUTime()-cpu)
}

// reportCPU reports MB per CPU second: the stage's cost, whatever else
// the machine runs.
func reportCPU(b *testing.B, n int64, cpu time.Duration) {
	b.Helper()
	if cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

func benchStageRead(b *testing.B) {
	size, err := benchutil.DiskSize()
	if err != nil {
		b.Fatal(err)
	}
	env := simtest.Start(b)
	vm := simtest.CreateVTPMVM(b, env, vspheretest.VMOptions{Name: "stage", Seed: 1, DiskSize: size})
	buf := make([]byte, 4<<20)
	b.SetBytes(size)
	b.ResetTimer()
	cpu := benchutil.CPUTime()
	defer func() { reportCPU(b, size*int64(b.N), benchutil.CPUTime()-cpu) }()
	for range b.N {
		src, err := env.Client.VMFiles(vm.VM).Open(b.Context(), vm.Datastore, vm.FlatPath)
		if err != nil {
			b.Fatal(err)
		}
		cr := env.Client.NewChunkReader(src, int64(len(buf)))
		for {
			_, err := cr.Next(b.Context(), buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		_ = cr.Close()
	}
}

func benchStageStore(b *testing.B, be storage.Backend, stored [][]byte) {
	b.Helper()
	var total int64
	for _, s := range stored {
		total += int64(len(s))
	}
	b.SetBytes(total)
	b.ResetTimer()
	cpu := benchutil.CPUTime()
	defer func() { reportCPU(b, total*int64(b.N), benchutil.CPUTime()-cpu) }()
	for i := range b.N {
		for j, s := range stored {
			name := fmt.Sprintf("data/%02x/%d-%d", j, i, j)
			if err := be.PutIfAbsent(b.Context(), name, bytes.NewReader(s), int64(len(s))); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func stageS3Backend(b *testing.B) storage.Backend {
	b.Helper()
	srv := s3server.StartT(b)
	if err := srv.CreateBucket(b.Context(), "stage", false); err != nil {
		b.Fatal(err)
	}
	be, err := s3.New(b.Context(), s3.Config{
		Endpoint: srv.Endpoint, Bucket: "stage", Region: srv.Region, PlainHTTP: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
	})
	if err != nil {
		b.Fatal(err)
	}
	return be
}

func benchStagePipeline(b *testing.B, chunks [][]byte) {
	data := bytes.Join(chunks, nil)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		repo := repotest.New(b, repotest.Options{})
		p := newPipeline(repo.Repository, repository.NewIndex(), 2, nil, func(int64) {})
		b.StartTimer()
		c0 := benchutil.CPUTime()
		if _, _, _, err := p.store(b.Context(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		cpu += benchutil.CPUTime() - c0
		p.close()
	}
	reportCPU(b, int64(len(data))*int64(b.N), cpu)
}

var probeEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))

func compressible(c []byte) bool {
	var dst []byte
	var in, out int
	for off := 0; off+64<<10 <= len(c); off += len(c) / 4 {
		s := c[off : off+64<<10]
		dst = probeEnc.EncodeAll(s, dst[:0])
		in += len(s)
		out += len(dst)
	}
	return out < in*95/100
}
