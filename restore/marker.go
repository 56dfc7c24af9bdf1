package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// MarkerName is the file a restore writes into the new home folder right
// after creating it, before the first upload, and deletes once the VM is
// registered. A home folder holding it is an incomplete restore: a rerun
// with the same target name removes it, when the process that wrote it is
// known to be gone, instead of refusing the folder as someone else's.
const MarkerName = "vtpm-backup-restore-incomplete.json"

// markerKind tells a restore marker from any other JSON file of that name.
const markerKind = "vtpm-backup incomplete restore"

// maxMarkerSize bounds what Preflight reads of a marker.
const maxMarkerSize = 64 << 10

// marker is the content of MarkerName.
type marker struct {
	Kind     string `json:"kind"`
	BackupID string `json:"backup_id"`
	// Name is the restored VM's name, the home folder's name: a marker
	// copied into another folder does not make that folder ours.
	Name string `json:"name"`
	// Process is the restoring process, so that a rerun on the same host
	// tells a dead run from one still going.
	Process repository.Process `json:"process"`
	Started time.Time          `json:"started"`
}

// Leftover is an incomplete restore found in the target home folder: a
// previous run into the same folder was killed (or its cleanup failed), and
// Run removes what it left before restoring.
type Leftover struct {
	// BackupID is the backup the killed run restored.
	BackupID string
	// Process is the killed run; Gone says why it is known to have stopped.
	Process repository.Process
	Gone    string
	Started time.Time
	// VM is the inventory path of the VM the killed run registered from
	// the folder, if it got that far, and its .vmx; Run unregisters it.
	VM, VMXPath string
}

// markerPath is the marker's path relative to the datastore.
func markerPath(name string) string { return name + "/" + MarkerName }

// writeMarker records in the new home folder that this process is
// restoring into it.
func writeMarker(ctx context.Context, c *vsphere.Client, plan *Plan, host repository.Host) error {
	data, err := json.Marshal(marker{
		Kind: markerKind, BackupID: plan.BackupID, Name: plan.Name,
		Process: host.Self(), Started: plan.clock.Now().UTC(),
	})
	if err != nil {
		return err
	}
	// Through the host the files go to, as they do.
	if err := c.HostFiles(plan.placement.Host).Upload(ctx, plan.Datastore, markerPath(plan.Name), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write the restore marker: %w", err)
	}
	return nil
}

// readMarker reads the marker of the home folder plan.Name; ok is false
// when there is none or it is not a restore marker for that folder.
func readMarker(ctx context.Context, c *vsphere.Client, ds, name string) (m marker, ok bool, err error) {
	rc, _, err := c.Download(ctx, ds, markerPath(name), 0, -1)
	if errors.Is(err, vsphere.ErrFileNotFound) || errors.Is(err, vsphere.ErrNotFound) {
		return marker{}, false, nil
	}
	if err != nil {
		return marker{}, false, fmt.Errorf("read [%s] %s: %w", ds, markerPath(name), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxMarkerSize))
	if err != nil {
		return marker{}, false, fmt.Errorf("read [%s] %s: %w", ds, markerPath(name), err)
	}
	if json.Unmarshal(data, &m) != nil || m.Kind != markerKind || m.Name != name {
		return marker{}, false, nil
	}
	return m, true, nil
}

// findLeftover decides whether the existing home folder (and the VM named
// like the restore, if any) is an incomplete restore of a dead run. It
// returns nil, nil when the folder holds no marker of ours: the folder is
// then someone else's and refused. A marker whose process may still run
// (on another host, or alive here) is refused too, with the reason.
func (p *Plan) findLeftover(ctx context.Context, c *vsphere.Client) (*Leftover, error) {
	m, ok, err := readMarker(ctx, c, p.Datastore, p.Name)
	if err != nil || !ok {
		return nil, err
	}
	gone := p.host.Gone(m.Process)
	if gone == "" {
		return nil, fmt.Errorf("%w: %s holds an incomplete restore of backup %s by process %d on %s, started %s, which may still be running: wait for it, or if it is gone delete the folder (and unregister a VM registered from it) by hand",
			ErrCollision, p.HomeFolder, m.BackupID, m.Process.PID, m.Process.Hostname, m.Started.Format(time.RFC3339))
	}
	lo := &Leftover{BackupID: m.BackupID, Process: m.Process, Gone: gone, Started: m.Started}
	if len(p.placement.NameTaken) == 0 {
		return lo, nil
	}
	// A VM of that name: ours only when it is registered from the marked
	// folder (the run was killed after registering it).
	if len(p.placement.NameTaken) > 1 {
		return nil, nil
	}
	taken := p.placement.NameTaken[0]
	vm, err := c.FindVM(ctx, taken.MoRef)
	if err != nil {
		return nil, err
	}
	info, err := c.VMInfo(ctx, vm)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(info.VMXPath, p.HomeFolder) {
		return nil, nil
	}
	lo.VM, lo.VMXPath = taken.InventoryPath, info.VMXPath
	return lo, nil
}

// removeLeftover removes the incomplete restore found by Preflight: the VM
// it registered, if any, and its home folder.
func removeLeftover(ctx context.Context, c *vsphere.Client, plan *Plan) error {
	lo := plan.Leftover
	plan.events.Status(fmt.Sprintf("removing the incomplete restore of backup %s in %s (%s)", lo.BackupID, plan.HomeFolder, lo.Gone))
	u := &undo{c: c, datastore: plan.Datastore, dir: plan.Name, madeDir: true, vmxPath: lo.VMXPath}
	if err := u.remove(ctx); err != nil {
		return fmt.Errorf("remove the incomplete restore in %s: %w", plan.HomeFolder, err)
	}
	return nil
}
