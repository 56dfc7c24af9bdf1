package vspheretest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// CBTBlockSize is the granularity at which the emulated change tracking
// records writes: ESXi tracks changed blocks, not bytes, so a changed area
// always covers whole blocks.
const CBTBlockSize = 64 << 10

// DefaultCBTWindow is how much of a disk one QueryChangedDiskAreas answer
// covers at most: vCenter answers a part of the disk from startOffset and
// the caller asks again from startOffset+length.
const DefaultCBTWindow = 16 << 20

// cbtFront emulates vCenter's Changed Block Tracking, which the simulator
// lacks (no QueryChangedDiskAreas, no backing changeId), as strictly as
// vCenter applies it:
//   - ReconfigVM with changeTrackingEnabled sets config.changeTrackingEnabled
//     (the simulator does) but tracking starts only at the next stun of the
//     VM: a snapshot created or removed, a revert, a power-on. Before that,
//     snapshots carry no changeId and queries fail with FileFault.
//   - Once tracking, every snapshot created gives each disk backing a
//     changeId "<tracking ID>/<epoch>" (the VM's current backing too, which
//     the snapshot copies): the epoch is closed by that snapshot.
//   - Writes are tracked per flat extent in CBTBlockSize blocks, stamped
//     with the epoch they happened in: every upload (PUT) through the
//     datastore file service rewrites a file whole, Env.WriteDisk writes
//     part of one. The blocks ever written are the allocated blocks of a
//     thin disk; the rest of it is unallocated.
//   - QueryChangedDiskAreas(snapshot, deviceKey, startOffset, changeId)
//     answers the blocks written after the changeId's epoch ("*": the
//     allocated blocks of a thin disk, the whole of a thick one), from
//     startOffset for at most the window (DefaultCBTWindow). A change ID of
//     another tracking ID (CBT reset: disabled and enabled, Env.ResetCBT) or
//     a VM without active tracking is a FileFault; a snapshot of another VM,
//     a device that is no disk, a bad offset or a malformed change ID is an
//     InvalidArgument.
//
// Writes made behind the file service's back (by the simulator itself)
// are not seen; the simulator writes only empty placeholders.
type cbtFront struct {
	next http.Handler
	reg  *simulator.Registry

	mu     sync.Mutex
	epoch  uint64
	files  map[string]*trackedFile // by the flat extent's local path
	vms    map[string]*cbtVM       // by VM moref value
	window int64
	faults []cbtFault

	queries atomic.Int64
}

// trackedFile maps each written block of a file to the epoch of its last
// write; a block absent was never written (unallocated when thin).
type trackedFile struct {
	blocks map[int64]uint64
}

// cbtVM is the tracking state of a VM with changeTrackingEnabled.
type cbtVM struct {
	// active: a stun has happened since tracking was enabled.
	active bool
	// ctk is each disk's tracking ID (by device key), replaced on a reset.
	ctk map[int32]string
}

type cbtFault struct {
	fault types.BaseMethodFault
	left  int // 0: forever
}

func newCBTFront(next http.Handler, reg *simulator.Registry) *cbtFront {
	return &cbtFront{next: next, reg: reg, epoch: 1, files: map[string]*trackedFile{}, vms: map[string]*cbtVM{}, window: DefaultCBTWindow}
}

func (f *cbtFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && strings.HasPrefix(r.URL.Path, folderPrefix):
		f.upload(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk"):
		f.soap(w, r)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// statusWriter remembers the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// upload passes a file upload on and records it as a rewrite of the whole
// file: the simulator's PUT truncates and writes the file.
func (f *cbtFront) upload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	local := f.localPath(q.Get("dcPath"), q.Get("dsName"), strings.TrimPrefix(r.URL.Path, folderPrefix))
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	f.next.ServeHTTP(sw, r)
	if local == "" || sw.status >= 300 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tf := &trackedFile{blocks: map[int64]uint64{}}
	for b := int64(0); b*CBTBlockSize < body.n; b++ {
		tf.blocks[b] = f.epoch
	}
	f.files[local] = tf
}

// localPath is the local file behind [dsName] p in the datacenter dcPath
// ("": any), "" when unknown.
func (f *cbtFront) localPath(dcPath, dsName, p string) string {
	for _, obj := range f.reg.All("Datastore") {
		ds, ok := obj.(*simulator.Datastore)
		if !ok || ds.Name != dsName {
			continue
		}
		if dcPath != "" && strings.Trim(datacenterPath(f.reg, ds.Self), "/") != strings.Trim(dcPath, "/") {
			continue
		}
		return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p))
	}
	return ""
}

// write records a write of n bytes at off into the file at local.
func (f *cbtFront) write(local string, off, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tf := f.files[local]
	if tf == nil {
		tf = &trackedFile{blocks: map[int64]uint64{}}
		f.files[local] = tf
	}
	for b := off / CBTBlockSize; b*CBTBlockSize < off+n; b++ {
		tf.blocks[b] = f.epoch
	}
}

// cbtMethods are the SOAP calls cbtFront looks at; others pass untouched.
var cbtMethods = [][]byte{
	[]byte("QueryChangedDiskAreas>"), []byte("ReconfigVM_Task>"), []byte("CreateSnapshot_Task>"),
	[]byte("CreateSnapshotEx_Task>"), []byte("RemoveSnapshot_Task>"), []byte("RevertToSnapshot_Task>"),
	[]byte("PowerOnVM_Task>"),
}

func (f *cbtFront) soap(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !slices.ContainsFunc(cbtMethods, func(m []byte) bool { return bytes.Contains(body, m) }) {
		f.next.ServeHTTP(w, r)
		return
	}
	m, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		f.next.ServeHTTP(w, r)
		return
	}
	switch req := m.Body.(type) {
	case *types.QueryChangedDiskAreas:
		f.serveQuery(w, r, req)
		return
	case *types.ReconfigVM_Task:
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		f.next.ServeHTTP(sw, r)
		if sw.status == http.StatusOK && req.Spec.ChangeTrackingEnabled != nil {
			f.setTracking(req.This, *req.Spec.ChangeTrackingEnabled)
		}
		return
	case *types.CreateSnapshot_Task:
		f.stun(req.This, true)
	case *types.CreateSnapshotEx_Task:
		f.stun(req.This, true)
	case *types.PowerOnVM_Task:
		f.stun(req.This, false)
	case *types.RemoveSnapshot_Task:
		f.stun(f.snapshotVM(req.This), false)
	case *types.RevertToSnapshot_Task:
		f.stun(f.snapshotVM(req.This), false)
	}
	f.next.ServeHTTP(w, r)
}

func (f *cbtFront) simVM(ref types.ManagedObjectReference) *simulator.VirtualMachine {
	vm, _ := f.reg.Get(ref).(*simulator.VirtualMachine)
	return vm
}

func (f *cbtFront) snapshotVM(ref types.ManagedObjectReference) types.ManagedObjectReference {
	if s, ok := f.reg.Get(ref).(*simulator.VirtualMachineSnapshot); ok {
		return s.Vm
	}
	return types.ManagedObjectReference{}
}

// setTracking turns tracking on (pending until the next stun) or off (at
// once: the tracking data is deleted and backings lose their changeId).
func (f *cbtFront) setTracking(ref types.ManagedObjectReference, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		if f.vms[ref.Value] == nil {
			f.vms[ref.Value] = &cbtVM{ctk: map[int32]string{}}
		}
		return
	}
	delete(f.vms, ref.Value)
	if vm := f.simVM(ref); vm != nil {
		f.reg.WithLock(&simulator.Context{Map: f.reg}, vm, func() {
			forDiskBackings(vm.Config, func(_ int32, b *diskBacking) { *b.changeID = "" })
		})
	}
}

// stun is a stun/unstun cycle of the VM: pending tracking becomes active
// with a fresh tracking ID per disk; before a snapshot of a tracking VM,
// each disk backing gets the change ID of the epoch the snapshot closes.
func (f *cbtFront) stun(ref types.ManagedObjectReference, snapshot bool) {
	vm := f.simVM(ref)
	if vm == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.vms[ref.Value]
	if st == nil {
		return
	}
	f.reg.WithLock(&simulator.Context{Map: f.reg}, vm, func() {
		if vm.Config == nil || vm.Config.ChangeTrackingEnabled == nil || !*vm.Config.ChangeTrackingEnabled {
			return
		}
		st.active = true
		forDiskBackings(vm.Config, func(key int32, b *diskBacking) {
			if st.ctk[key] == "" {
				st.ctk[key] = uuid.NewString()
			}
			if snapshot {
				*b.changeID = fmt.Sprintf("%s/%d", st.ctk[key], f.epoch)
			}
		})
	})
	if snapshot && st.active {
		f.epoch++
	}
}

// diskBacking is what the emulation reads and writes of a disk's backing.
type diskBacking struct {
	file     string
	thin     bool
	changeID *string
}

// forDiskBackings calls fn for each disk of cfg with a file backing that
// has a change ID.
func forDiskBackings(cfg *types.VirtualMachineConfigInfo, fn func(key int32, b *diskBacking)) {
	if cfg == nil {
		return
	}
	for _, d := range cfg.Hardware.Device {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if b := backingOf(disk); b != nil {
			fn(disk.Key, b)
		}
	}
}

func backingOf(disk *types.VirtualDisk) *diskBacking {
	switch b := disk.Backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		return &diskBacking{file: b.FileName, thin: b.ThinProvisioned != nil && *b.ThinProvisioned, changeID: &b.ChangeId}
	case *types.VirtualDiskSparseVer2BackingInfo:
		return &diskBacking{file: b.FileName, thin: true, changeID: &b.ChangeId}
	case *types.VirtualDiskSeSparseBackingInfo:
		return &diskBacking{file: b.FileName, thin: true, changeID: &b.ChangeId}
	}
	return nil
}

// serveQuery lets the simulator check the session and the object first
// (it then fails with MethodNotFound), and answers the call itself.
func (f *cbtFront) serveQuery(w http.ResponseWriter, r *http.Request, req *types.QueryChangedDiskAreas) {
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	if !bytes.Contains(rec.Body.Bytes(), []byte("MethodNotFound")) {
		copyResponse(w, rec)
		return
	}
	f.queries.Add(1)
	info, msg, fault := f.query(req)
	if fault != nil {
		writeFault(w, msg, fault)
		return
	}
	var out bytes.Buffer
	out.WriteString(xml.Header)
	env := cbtEnvelope{Env: "http://schemas.xmlsoap.org/soap/envelope/", XSI: "http://www.w3.org/2001/XMLSchema-instance", XSD: "http://www.w3.org/2001/XMLSchema"}
	env.Body.Res = cbtResponse{XMLNS: "urn:vim25", Returnval: *info}
	if err := xml.NewEncoder(&out).Encode(&env); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(out.Bytes())
}

type cbtEnvelope struct {
	XMLName xml.Name `xml:"soapenv:Envelope"`
	Env     string   `xml:"xmlns:soapenv,attr"`
	XSI     string   `xml:"xmlns:xsi,attr"`
	XSD     string   `xml:"xmlns:xsd,attr"`
	Body    struct {
		Res cbtResponse `xml:"QueryChangedDiskAreasResponse"`
	} `xml:"soapenv:Body"`
}

type cbtResponse struct {
	XMLNS     string               `xml:"xmlns,attr"`
	Returnval types.DiskChangeInfo `xml:"returnval"`
}

func invalidArgument(prop string) (*types.DiskChangeInfo, string, types.BaseMethodFault) {
	return nil, "A specified parameter was not correct: " + prop, &types.InvalidArgument{InvalidProperty: prop}
}

// snapshotDisk is what a query needs of the snapshot's disk.
type snapshotDisk struct {
	capacity int64
	diskBacking
	changeID string
}

// query computes the answer to req, or the fault vCenter answers with.
func (f *cbtFront) query(req *types.QueryChangedDiskAreas) (*types.DiskChangeInfo, string, types.BaseMethodFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.faults) > 0 {
		ft := f.faults[0]
		if ft.left == 1 {
			f.faults = f.faults[1:]
		} else if ft.left > 1 {
			f.faults[0].left--
		}
		return nil, "injected fault", ft.fault
	}
	vm := f.simVM(req.This)
	if vm == nil {
		return nil, "managed object not found", &types.ManagedObjectNotFound{Obj: req.This}
	}
	if req.Snapshot == nil {
		return invalidArgument("snapshot")
	}
	snap, ok := f.reg.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
	if !ok || snap.Vm != vm.Self {
		return invalidArgument("snapshot")
	}
	var (
		d        *snapshotDisk
		tracking bool
		dcPath   = datacenterPath(f.reg, vm.Self)
	)
	ctx := &simulator.Context{Map: f.reg}
	f.reg.WithLock(ctx, vm, func() {
		tracking = vm.Config != nil && vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	})
	f.reg.WithLock(ctx, snap, func() {
		dev := object.VirtualDeviceList(snap.Config.Hardware.Device).FindByKey(req.DeviceKey)
		disk, ok := dev.(*types.VirtualDisk)
		if !ok {
			return
		}
		if b := backingOf(disk); b != nil {
			d = &snapshotDisk{capacity: disk.CapacityInBytes, diskBacking: *b, changeID: *b.changeID}
		}
	})
	if d == nil {
		return invalidArgument("deviceKey")
	}
	st := f.vms[vm.Self.Value]
	if !tracking || st == nil || !st.active || d.changeID == "" {
		return nil, fmt.Sprintf("Error caused by file %s: change tracking is not active for this disk", d.file), &types.FileFault{File: d.file}
	}
	if req.StartOffset < 0 || req.StartOffset >= d.capacity {
		return invalidArgument("startOffset")
	}
	snapCtk, snapEpoch, ok := parseChangeID(d.changeID)
	if !ok || snapCtk != st.ctk[req.DeviceKey] {
		return nil, fmt.Sprintf("Error caused by file %s: the snapshot's change tracking data was reset", d.file), &types.FileFault{File: d.file}
	}
	since := uint64(0)
	if req.ChangeId != "*" {
		ctk, epoch, ok := parseChangeID(req.ChangeId)
		switch {
		case !ok:
			return invalidArgument("changeId")
		case ctk != snapCtk || epoch > snapEpoch:
			return nil, fmt.Sprintf("Error caused by file %s: change ID %s is not known (change tracking was reset)", d.file, req.ChangeId), &types.FileFault{File: d.file}
		}
		since = epoch
	}
	end := min(d.capacity, req.StartOffset+f.window)
	info := &types.DiskChangeInfo{StartOffset: req.StartOffset, Length: end - req.StartOffset}
	if req.ChangeId == "*" && !d.thin {
		info.ChangedArea = []types.DiskChangeExtent{{Start: req.StartOffset, Length: end - req.StartOffset}}
		return info, "", nil
	}
	var tf *trackedFile
	var dp object.DatastorePath
	if dp.FromString(d.file) {
		tf = f.files[f.localPath(dcPath, dp.Datastore, strings.TrimSuffix(dp.Path, ".vmdk")+"-flat.vmdk")]
	}
	info.ChangedArea = changedAreas(tf, since, req.StartOffset, end, req.ChangeId == "*")
	return info, "", nil
}

// changedAreas lists the blocks of tf in [start, end) written after epoch
// since (all written blocks when all), merged into extents.
func changedAreas(tf *trackedFile, since uint64, start, end int64, all bool) []types.DiskChangeExtent {
	if tf == nil {
		return nil
	}
	var out []types.DiskChangeExtent
	for b := start / CBTBlockSize; b*CBTBlockSize < end; b++ {
		e, ok := tf.blocks[b]
		if !ok || (!all && e <= since) {
			continue
		}
		s, l := max(b*CBTBlockSize, start), min((b+1)*CBTBlockSize, end)-max(b*CBTBlockSize, start)
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length == s {
			out[n-1].Length += l
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: s, Length: l})
	}
	return out
}

func parseChangeID(id string) (ctk string, epoch uint64, ok bool) {
	ctk, seq, found := strings.Cut(id, "/")
	if !found || ctk == "" {
		return "", 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return ctk, n, err == nil
}

// WriteDisk writes data at off into the flat extent of the VM's disk key,
// as the guest would, and records it for change tracking (and thin
// allocation). It writes the datastore's local file directly: the file
// service has no partial writes.
func (e *Env) WriteDisk(ctx context.Context, v *VTPMVM, key int32, off int64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	vm := e.cbt.simVM(v.Ref)
	if vm == nil {
		return fmt.Errorf("write disk %d of %s: VM not in the simulator", key, v.Name)
	}
	var b *diskBacking
	var capacity int64
	e.Model.Map().WithLock(e.simContext(), vm, func() {
		if disk, ok := object.VirtualDeviceList(vm.Config.Hardware.Device).FindByKey(key).(*types.VirtualDisk); ok {
			b, capacity = backingOf(disk), disk.CapacityInBytes
		}
	})
	if b == nil {
		return fmt.Errorf("write disk %d of %s: no such disk", key, v.Name)
	}
	if off < 0 || off+int64(len(data)) > capacity {
		return fmt.Errorf("write disk %d of %s: %d bytes at %d outside its capacity %d", key, v.Name, len(data), off, capacity)
	}
	local, err := e.flatPath(vm, b.file)
	if err != nil {
		return err
	}
	fh, err := os.OpenFile(local, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write disk %d of %s: %w", key, v.Name, err)
	}
	if _, err := fh.WriteAt(data, off); err != nil {
		_ = fh.Close()
		return fmt.Errorf("write disk %d of %s: %w", key, v.Name, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("write disk %d of %s: %w", key, v.Name, err)
	}
	e.cbt.write(local, off, int64(len(data)))
	return nil
}

// flatPath is the local file of the flat extent of descriptor file of vm.
func (e *Env) flatPath(vm *simulator.VirtualMachine, file string) (string, error) {
	var dp object.DatastorePath
	if !dp.FromString(file) {
		return "", fmt.Errorf("disk %q: not a datastore path", file)
	}
	local := e.cbt.localPath(datacenterPath(e.Model.Map(), vm.Self), dp.Datastore, strings.TrimSuffix(dp.Path, ".vmdk")+"-flat.vmdk")
	if local == "" {
		return "", fmt.Errorf("disk %s: datastore %s not in the simulator", file, dp.Datastore)
	}
	return local, nil
}

// EnableCBT turns on change tracking for the VM as an administrator does
// (ReconfigVM with changeTrackingEnabled); it takes effect at the next
// stun (snapshot, power-on).
func (e *Env) EnableCBT(ctx context.Context, v *VTPMVM, on bool) error {
	task, err := v.VM.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &on})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("set change tracking of %s to %v: %w", v.Name, on, err)
	}
	return nil
}

// ResetCBT resets the change tracking of the VM's disks, as ESXi does
// after a disk resize, a Storage vMotion or a crash (new tracking IDs):
// change IDs recorded before are unknown from now on.
func (e *Env) ResetCBT(v *VTPMVM) {
	e.cbt.mu.Lock()
	defer e.cbt.mu.Unlock()
	if st := e.cbt.vms[v.Ref.Value]; st != nil {
		for k := range st.ctk {
			st.ctk[k] = uuid.NewString()
		}
	}
}

// InjectCBTFault makes the next count QueryChangedDiskAreas calls (0:
// all) fail with fault (the simulator's fault rules do not reach calls it
// does not implement).
func (e *Env) InjectCBTFault(fault types.BaseMethodFault, count int) {
	e.cbt.mu.Lock()
	defer e.cbt.mu.Unlock()
	e.cbt.faults = append(e.cbt.faults, cbtFault{fault: fault, left: count})
}

// SetCBTWindow sets how much of a disk one QueryChangedDiskAreas answer
// covers at most (DefaultCBTWindow).
func (e *Env) SetCBTWindow(n int64) {
	e.cbt.mu.Lock()
	defer e.cbt.mu.Unlock()
	e.cbt.window = n
}

// CBTQueries returns how many QueryChangedDiskAreas calls were answered.
func (e *Env) CBTQueries() int64 { return e.cbt.queries.Load() }

// AllocatedBytes is how much of the VM's disk key is allocated: the
// blocks ever written (a thin disk's size on the datastore).
func (e *Env) AllocatedBytes(v *VTPMVM, key int32) (int64, error) {
	vm := e.cbt.simVM(v.Ref)
	if vm == nil {
		return 0, fmt.Errorf("VM %s not in the simulator", v.Name)
	}
	var file string
	e.Model.Map().WithLock(e.simContext(), vm, func() {
		if disk, ok := object.VirtualDeviceList(vm.Config.Hardware.Device).FindByKey(key).(*types.VirtualDisk); ok {
			if b := backingOf(disk); b != nil {
				file = b.file
			}
		}
	})
	local, err := e.flatPath(vm, file)
	if err != nil {
		return 0, err
	}
	e.cbt.mu.Lock()
	defer e.cbt.mu.Unlock()
	if tf := e.cbt.files[local]; tf != nil {
		return int64(len(tf.blocks)) * CBTBlockSize, nil
	}
	return 0, nil
}

// emptyDisk makes the VM's flat extent a sparse file of its capacity with
// nothing written: a new thin disk.
func (e *Env) emptyDisk(v *VTPMVM) error {
	vm := e.cbt.simVM(v.Ref)
	if vm == nil {
		return fmt.Errorf("VM %s not in the simulator", v.Name)
	}
	local, err := e.flatPath(vm, v.DatastorePath(v.DescriptorPath))
	if err != nil {
		return err
	}
	if err := os.Truncate(local, v.DiskSize); err != nil {
		return fmt.Errorf("create the empty disk of %s: %w", v.Name, err)
	}
	e.cbt.mu.Lock()
	delete(e.cbt.files, local)
	e.cbt.mu.Unlock()
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
