package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// CBTMode says whether a backup reads disks through Changed Block
// Tracking.
type CBTMode string

// CBT modes (backup --cbt).
const (
	// CBTAuto reads only what CBT reports changed (or allocated) when the
	// VM has it on and the previous backup allows it, and everything
	// otherwise, saying why.
	CBTAuto CBTMode = "auto"
	// CBTOn is CBTAuto for VMs with CBT on; a VM without it fails (unless
	// Options.EnableCBT turns it on).
	CBTOn CBTMode = "on"
	// CBTOff reads every disk whole and never asks vCenter for changes.
	CBTOff CBTMode = "off"
)

// ParseCBTMode parses "auto", "on" or "off".
func ParseCBTMode(s string) (CBTMode, error) {
	switch m := CBTMode(s); m {
	case CBTAuto, CBTOn, CBTOff:
		return m, nil
	case "":
		return CBTAuto, nil
	}
	return "", fmt.Errorf("--cbt %q: want auto, on or off", s)
}

// ErrCBTOff: --cbt on, and the VM has Changed Block Tracking off.
var ErrCBTOff = errors.New("changed block tracking is off for the VM")

// prepareCBT turns CBT on when asked (never silently: a warning says so),
// and refuses a VM without it under CBTOn, before anything is written.
func (j *vmBackup) prepareCBT(ctx context.Context) error {
	o := j.b.opts
	if o.CBT == CBTOff || j.info.ChangeTracking {
		return nil
	}
	if o.EnableCBT {
		if err := j.c.EnableChangeTracking(ctx, j.vm); err != nil {
			if o.CBT == CBTOn {
				return fmt.Errorf("VM %s: %w", j.info.Name, err)
			}
			j.res.Warnings = append(j.res.Warnings, fmt.Sprintf("could not turn on Changed Block Tracking (--enable-cbt): %v; this backup reads every disk whole", err))
			return nil
		}
		j.info.ChangeTracking = true
		j.res.CBTEnabled = true
		j.res.Warnings = append(j.res.Warnings, "turned on Changed Block Tracking (--enable-cbt): vSphere starts tracking at the VM's next stun, which this backup's snapshot is; the next backup reads only what changed")
		return nil
	}
	if o.CBT == CBTOn {
		return fmt.Errorf("%w: VM %s: --cbt on needs Changed Block Tracking (config.changeTrackingEnabled); pass --enable-cbt to turn it on (it starts at the backup's snapshot), or use --cbt auto", ErrCBTOff, j.info.Name)
	}
	return nil
}

// readSnapshotDisks notes the disks of our snapshot (UUID, capacity, CBT
// change ID) for the manifest and the CBT decisions.
func (j *vmBackup) readSnapshotDisks(ctx context.Context, snap types.ManagedObjectReference) {
	j.snap = snap
	disks, err := j.c.SnapshotDisks(ctx, snap)
	if err != nil {
		j.snapErr = err
		return
	}
	j.snapDisks = map[int32]vsphere.DiskInfo{}
	for _, d := range disks {
		j.snapDisks[d.Key] = d
	}
}

// diskPlan is how one disk extent is read.
type diskPlan struct {
	rec repository.DiskRecord
	// read marks the chunks to read; the others come from known (nil:
	// read everything).
	read  []bool
	known func(i int) (string, repository.StoredObject)
	// verify: read everything anyway and compare with what CBT said.
	verify bool
}

// planDisk decides how to read f, the data extent of a disk, and records
// the disk for the manifest.
func (j *vmBackup) planDisk(ctx context.Context, f sourceFile, size int64) *diskPlan {
	o := j.b.opts
	sd, ok := j.snapDisks[f.DiskKey]
	plan := &diskPlan{rec: repository.DiskRecord{Key: f.DiskKey, Extent: f.String(), Read: repository.DiskReadFull}}
	if !ok {
		plan.rec.Fallback = "the snapshot's disk could not be read"
		if j.snapErr != nil {
			plan.rec.Fallback += fmt.Sprintf(" (%v)", j.snapErr)
		}
		return plan
	}
	plan.rec.Label, plan.rec.UUID, plan.rec.Capacity, plan.rec.ChangeID = sd.Label, sd.UUID, sd.CapacityInBytes, sd.ChangeID
	full := func(format string, args ...any) *diskPlan {
		plan.rec.Fallback = fmt.Sprintf(format, args...)
		return plan
	}
	switch {
	case o.CBT == CBTOff:
		return full("--cbt off")
	case extentsOf(j.files, f.DiskKey) > 1 || len(sd.Chain) > 1:
		plan.rec.Extent = ""
		return full("the disk is a chain of %d files (snapshots of its own or a linked clone): CBT areas do not map onto its files", len(sd.Chain))
	case sd.Backing != vsphere.BackingFlat || size != sd.CapacityInBytes:
		return full("its data file (%d bytes) is not a flat image of the %d-byte disk", size, sd.CapacityInBytes)
	case sd.ChangeID == "" && !j.info.ChangeTracking:
		return full("Changed Block Tracking is off for this VM (turn it on with --enable-cbt)")
	case sd.ChangeID == "":
		return full("Changed Block Tracking is on but not active yet: vSphere starts it at the VM's next stun (snapshot, power-on)")
	}
	prev, reason := j.previousDisk(sd, f)
	if prev != nil && o.FullEvery > 0 && prev.rec.CBTChain+1 >= o.FullEvery {
		return full("--full-every %d: %d backups in a row read only changes", o.FullEvery, prev.rec.CBTChain)
	}
	changeID, mode := vsphere.AllAreas, repository.DiskReadAllocated
	if prev != nil {
		changeID, mode = prev.rec.ChangeID, repository.DiskReadChanged
	}
	areas, err := j.c.QueryChangedAreas(ctx, j.vm, j.snap, sd.Key, sd.CapacityInBytes, changeID)
	switch {
	case errors.Is(err, vsphere.ErrCBTReset):
		return full("CBT was reset or is unavailable (%v)", err)
	case err != nil:
		return full("the CBT query failed (%v)", err)
	}
	plan.read = chunksOf(areas, size, j.p.chunkSize)
	plan.rec.Read, plan.rec.Fallback = mode, reason
	if prev != nil {
		plan.known = prev.chunk
		plan.rec.CBTChain = prev.rec.CBTChain + 1
	} else {
		plan.known = func(int) (string, repository.StoredObject) { return repository.ZeroChunk, repository.StoredObject{} }
		plan.rec.CBTChain = 1
	}
	if o.VerifyCBT {
		plan.verify = true
		plan.rec.Read, plan.rec.CBTChain = repository.DiskReadFull, 0
		plan.rec.Fallback = "--verify-cbt: read everything to check CBT"
	}
	return plan
}

// prevDisk is the previous backup's record and file of a disk.
type prevDisk struct {
	rec  repository.DiskRecord
	file repository.File
	m    *repository.Manifest
}

func (p *prevDisk) chunk(i int) (string, repository.StoredObject) {
	c := p.file.Chunks[i]
	return c, p.m.Objects[c]
}

// previousDisk returns the previous backup's state of disk sd when its
// change ID can be trusted for sd, or why not.
func (j *vmBackup) previousDisk(sd vsphere.DiskInfo, f sourceFile) (*prevDisk, string) {
	m := j.prev
	if m == nil {
		return nil, "no previous backup of this VM: the allocated areas were read"
	}
	var rec *repository.DiskRecord
	for i := range m.Disks {
		if m.Disks[i].Key == sd.Key {
			rec = &m.Disks[i]
		}
	}
	switch {
	case rec == nil || rec.ChangeID == "":
		return nil, fmt.Sprintf("the previous backup %s recorded no CBT change ID for this disk: the allocated areas were read", m.BackupID)
	case rec.UUID != sd.UUID:
		return nil, fmt.Sprintf("the disk's UUID changed since the previous backup (%s, now %s): the allocated areas were read", rec.UUID, sd.UUID)
	case rec.Capacity != sd.CapacityInBytes:
		return nil, fmt.Sprintf("the disk's capacity changed since the previous backup (%d bytes, now %d): the allocated areas were read", rec.Capacity, sd.CapacityInBytes)
	case rec.Extent != f.String():
		return nil, fmt.Sprintf("the disk's file changed since the previous backup (%s, now %s): the allocated areas were read", rec.Extent, f)
	case m.ChunkSize != j.p.chunkSize:
		return nil, fmt.Sprintf("the previous backup used another chunk size (%d): the allocated areas were read", m.ChunkSize)
	}
	for _, pf := range m.Files {
		if fmt.Sprintf("[%s] %s", pf.Datastore, path.Join(pf.Dir, pf.Name)) == rec.Extent && pf.Size == sd.CapacityInBytes {
			return &prevDisk{rec: *rec, file: pf, m: m}, ""
		}
	}
	return nil, fmt.Sprintf("the previous backup %s holds no %d-byte %s: the allocated areas were read", m.BackupID, sd.CapacityInBytes, rec.Extent)
}

func extentsOf(files []sourceFile, key int32) int {
	n := 0
	for _, f := range files {
		if f.Disk && f.DiskKey == key && f.Type == repository.FileDiskExtent {
			n++
		}
	}
	return n
}

// chunksOf marks the chunks of a size-byte file that areas touch.
func chunksOf(areas []vsphere.DiskArea, size, chunk int64) []bool {
	read := make([]bool, (size+chunk-1)/chunk)
	for _, a := range areas {
		if a.Length <= 0 {
			continue
		}
		first, last := a.Start/chunk, min((a.Start+a.Length-1)/chunk, int64(len(read))-1)
		for i := first; i <= last; i++ {
			read[i] = true
		}
	}
	return read
}

// storeDisk stores the data extent of a disk: whole, or only the chunks
// CBT reports changed or allocated.
func (j *vmBackup) storeDisk(ctx context.Context, files *vsphere.Files, f sourceFile) (repository.File, error) {
	src, err := files.Open(ctx, f.Datastore, f.path())
	if err != nil {
		return repository.File{}, openError(f, err)
	}
	plan := j.planDisk(ctx, f, src.Size())
	j.disks = append(j.disks, plan.rec)
	if plan.read == nil || plan.verify {
		mf, err := j.b.storeSource(ctx, j.p, j.c, src, f)
		if err == nil {
			j.res.DiskBytesRead += mf.Size
			if plan.verify {
				j.verifyCBT(plan, mf)
			}
		}
		return mf, err
	}
	cs := &cbtChunks{src: src, newReader: func(s vsphere.DiskSource) *vsphere.ChunkReader { return j.c.NewChunkReader(s, j.p.chunkSize) },
		chunk: j.p.chunkSize, read: plan.read, known: plan.known}
	defer cs.close()
	size, sum, chunks, err := j.p.storeChunks(ctx, cs)
	j.res.DiskBytesRead += cs.bytesRead
	if err != nil {
		return repository.File{}, fmt.Errorf("back up %s: %w", f, err)
	}
	return repository.File{Name: f.Name, Datastore: f.Datastore, Dir: f.Dir, Type: f.Type, Size: size, SHA256: sum, Chunks: chunks}, nil
}

// verifyCBT compares a disk read whole with what CBT said: every chunk it
// reported unchanged (or unallocated) must be the previous backup's (or
// zero).
func (j *vmBackup) verifyCBT(plan *diskPlan, mf repository.File) {
	missed, first := 0, int64(-1)
	for i, c := range mf.Chunks {
		if i >= len(plan.read) || plan.read[i] {
			continue
		}
		if want, _ := plan.known(i); want != c {
			missed++
			if first < 0 {
				first = int64(i) * j.p.chunkSize
			}
		}
	}
	j.res.CBTMissed += missed
	if missed > 0 {
		j.res.Warnings = append(j.res.Warnings, fmt.Sprintf("--verify-cbt: CBT missed %d changed chunk(s) of %s (%s), the first at offset %d: this backup read them anyway; a CBT reset (turn it off and on) is advised", missed, plan.rec.Label, plan.rec.Extent, first))
	}
}

// cbtChunks hands out a disk's chunks for the pipeline: those to read
// through ranged, resumable ChunkReaders over each run of them, the others
// as known entries (knownChunks).
type cbtChunks struct {
	src       vsphere.DiskSource
	newReader func(vsphere.DiskSource) *vsphere.ChunkReader
	chunk     int64
	read      []bool
	known     func(i int) (string, repository.StoredObject)

	next      int
	cur       *vsphere.ChunkReader
	curStart  int64
	curEnd    int
	bytesRead int64
}

func (c *cbtChunks) size(i int) int64 {
	return min(c.chunk, c.src.Size()-int64(i)*c.chunk)
}

// Known implements knownChunks.
func (c *cbtChunks) Known() (string, repository.StoredObject, int64, bool) {
	if c.next >= len(c.read) || c.read[c.next] {
		return "", repository.StoredObject{}, 0, false
	}
	e, so := c.known(c.next)
	n := c.size(c.next)
	c.next++
	return e, so, n, true
}

// Next reads the next chunk to read, opening a reader over its run.
func (c *cbtChunks) Next(ctx context.Context, buf []byte) (int, error) {
	if c.next >= len(c.read) {
		c.close()
		return 0, io.EOF
	}
	if c.cur == nil {
		end := c.next
		for end < len(c.read) && c.read[end] {
			end++
		}
		c.curStart = int64(c.next) * c.chunk
		stop := min(int64(end)*c.chunk, c.src.Size())
		c.cur, c.curEnd = c.newReader(&window{src: c.src, off: c.curStart, size: stop - c.curStart}), end
	}
	n, err := c.cur.Next(ctx, buf)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return 0, fmt.Errorf("in the run of chunks from offset %d: %w", c.curStart, err)
	}
	c.next++
	c.bytesRead += int64(n)
	if c.next == c.curEnd {
		c.close()
	}
	return n, nil
}

func (c *cbtChunks) close() {
	if c.cur != nil {
		_ = c.cur.Close()
		c.cur = nil
	}
}

// window is the part [off, off+size) of a DiskSource.
type window struct {
	src       vsphere.DiskSource
	off, size int64
}

func (w *window) Size() int64 { return w.size }

func (w *window) Open(ctx context.Context, off, length int64) (io.ReadCloser, error) {
	return w.src.Open(ctx, w.off+off, length)
}
