package main

import (
	"time"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/metrics"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/restore"
)

// This file is the one place where the results of the domain packages
// become --json messages. The domain types carry no JSON tags (only the
// repository's on-disk formats do): the message structs of internal/ui are
// the scripting interface, and a change of a domain type shows up here, at
// compile time, instead of silently in the output.

// rfc3339 formats t in UTC for a message, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// statusMessage is a step of the run; vm is "" when the step is not about
// one VM.
func statusMessage(vm, msg string) ui.StatusMessage {
	return ui.StatusMessage{VM: vm, Message: msg}
}

func summaryMessage(command string, succeeded, failed int, took time.Duration) ui.SummaryMessage {
	return ui.SummaryMessage{Command: command, Succeeded: succeeded, Failed: failed, DurationSeconds: took.Seconds()}
}

// initMessage describes the repository init created at location, with
// the identity file it wrote (if any) and the writer key it created.
func initMessage(location string, cfg repository.Config, identityFile string, writer repository.WriterPublicKey, writerFile string) ui.InitMessage {
	return ui.InitMessage{
		Repository:     location,
		ID:             cfg.ID,
		Version:        cfg.Version,
		ChunkSize:      cfg.ChunkSize,
		Compression:    cfg.Compression,
		Recipients:     cfg.Recipients,
		ObjectLockDays: cfg.ObjectLockDays,
		IdentityFile:   identityFile,
		WriterKey:      writer.String(),
		WriterKeyFile:  writerFile,
	}
}

// writerKeyMessage reports what happened to the writer key k of the
// repository at location (action: created, added, replaced, listed); file
// is its private key file when this run used one.
func writerKeyMessage(action, location string, k repository.WriterPublicKey, file string) ui.WriterKeyMessage {
	return ui.WriterKeyMessage{Action: action, Repository: location, WriterKey: k.String(), WriterKeyFile: file, PinLine: k.PinLine()}
}

// backupEntryMessage is one catalog entry of "list".
func backupEntryMessage(b repository.Backup) ui.BackupEntryMessage {
	e := ui.BackupEntryMessage{BackupID: b.ID, VM: b.VM, Time: rfc3339(b.Time)}
	if re := b.Rejection(); re != nil {
		e.Rejected, e.Error = re.Kind, re.Reason
		return e
	}
	if b.Err != nil {
		e.Error = b.Err.Error()
		return e
	}
	m := b.Header
	e.Unsigned = b.Unsigned()
	e.Size, e.StoredSize = m.Summary.Size, m.Summary.StoredSize
	e.VTPM, e.Encrypted, e.CBT = m.VM.VTPM, m.VM.Encrypted, m.VM.ChangeTracking
	seen := map[string]bool{}
	for _, k := range m.Keys {
		name := k.ProviderID
		if name == "" {
			name = "(default)"
		}
		if k.ProviderType != "" {
			name += " (" + k.ProviderType + ")"
		}
		if !seen[name] {
			seen[name] = true
			e.KeyProviders = append(e.KeyProviders, name)
		}
	}
	return e
}

func auditVMMessage(v audit.VMReport) ui.AuditVMMessage {
	m := ui.AuditVMMessage{
		VM: v.VM, BackupID: v.BackupID, BackupTime: rfc3339(v.BackupTime),
		Size: v.Size, StoredSize: v.StoredSize, VTPM: v.VTPM, CBT: v.CBT,
		ManifestOK: v.ManifestOK, Restorable: v.Restorable, Objects: v.Objects, ObjectsRead: v.ObjectsRead, ObjectsBad: v.ObjectsBad,
		ObjectsOK: v.ObjectsOK, NvramOK: v.NvramOK, KeysChecked: v.KeysChecked, KeysOK: v.KeysOK, AgeOK: v.AgeOK,
		Ready: v.Ready, Verdict: verdict(v.Ready), Reasons: v.Reasons, Warnings: v.Warnings,
	}
	if v.BackupID != "" {
		age := int64(v.Age.Seconds())
		m.AgeSeconds = &age
	}
	if r := v.Retention; r != nil {
		m.Retention = &ui.AuditRetention{Checked: r.Checked, Retained: r.Retained, Until: rfc3339(r.Until)}
	}
	return m
}

func auditSummaryMessage(rep *audit.Report, metricsFile string) ui.AuditSummaryMessage {
	return ui.AuditSummaryMessage{
		Ready: rep.Ready(), VMs: len(rep.VMs), ReadyVMs: len(rep.VMs) - rep.NotReady(), NotReadyVMs: rep.NotReady(),
		Problems: rep.Problems, VCenter: rep.VCenter, Mode: rep.Mode, Subset: rep.Subset,
		MaxAgeSeconds: int64(rep.MaxAge.Seconds()), Time: rep.Time.UTC().Format(time.RFC3339),
		MetricsFile: metricsFile,
	}
}

func keyProviderMessage(kp keys.Provider) ui.KeyProviderMessage {
	return ui.KeyProviderMessage{
		ID: kp.ID, Type: string(kp.Type), Default: kp.Default,
		NKPBackedUp: kp.BackedUp, Health: kp.Health, Servers: kp.Servers,
	}
}

// keyStatusMessage is the verdict on one key of backup m on vcenter.
func keyStatusMessage(m *repository.Manifest, vcenter string, st keys.KeyStatus) ui.KeyStatusMessage {
	return ui.KeyStatusMessage{
		BackupID: m.BackupID, VM: m.VM.Name, VCenter: vcenter,
		KeyID: st.Ref.KeyID, Use: st.Ref.Use, ProviderID: st.Ref.ProviderID, ProviderType: string(st.ProviderType),
		ProviderRegistered: st.ProviderRegistered, Available: st.Available, Reasons: st.Reasons, Remedy: st.Remedy,
		Unsigned: !m.Auth.Signed,
	}
}

// vmDoneMessage reports one VM of a backup run.
func vmDoneMessage(r *backup.Result) ui.VMDoneMessage {
	return ui.VMDoneMessage{
		VM: r.VM, MoRef: r.MoRef, Success: r.Err == nil, BackupID: r.BackupID, Error: errorText(r.Err),
		BytesRead: r.BytesRead, BytesUploaded: r.BytesUploaded,
		ChunksNew: r.ChunksNew, ChunksKnown: r.ChunksKnown, ChunksZero: r.ChunksZero, ChunksReused: r.ChunksReused,
		DiskBytesRead: r.DiskBytesRead, DiskBytesSkipped: r.BytesSkipped, Disks: diskReads(r.Disks),
		CBTEnabled: r.CBTEnabled, CBTMissedChunks: r.CBTMissed,
		Seconds: r.Finished.Sub(r.Started).Seconds(), Warnings: r.Warnings,
	}
}

func diskReads(disks []repository.DiskRecord) []ui.DiskRead {
	var out []ui.DiskRead
	for _, d := range disks {
		out = append(out, ui.DiskRead{Label: d.Label, Key: d.Key, Read: d.Read, Reason: d.Fallback, ChangeID: d.ChangeID})
	}
	return out
}

// backupPlanMessage is one VM of "backup --dry-run".
func backupPlanMessage(r *backup.Result) ui.BackupPlanMessage {
	msg := ui.BackupPlanMessage{VM: r.VM, Error: errorText(r.Err), Files: []ui.PlannedFile{}, Keys: []ui.PlannedKey{}}
	for _, f := range r.Files {
		msg.Files = append(msg.Files, ui.PlannedFile{Path: f.Path, Type: f.Type, Size: f.Size})
		msg.TotalBytes += f.Size
	}
	for _, k := range r.Keys {
		msg.Keys = append(msg.Keys, ui.PlannedKey{KeyID: k.KeyID, ProviderID: k.ProviderID, ProviderType: k.ProviderType, Use: k.Use})
	}
	return msg
}

// pruneAction is a prune decision as the plan names it.
func pruneAction(d repository.Decision) string {
	if d.Keep {
		return "keep"
	}
	return "remove"
}

func prunePlanMessage(r *repository.PruneReport) ui.PrunePlanMessage {
	msg := ui.PrunePlanMessage{DryRun: r.DryRun, Policy: r.Policy.String(), Keep: r.Kept, Remove: r.Forgotten}
	for _, d := range r.Decisions {
		msg.Backups = append(msg.Backups, ui.PrunePlanEntry{BackupID: d.BackupID, VM: d.VMName, VMKey: d.VMKey,
			Time: d.Time.UTC(), Action: pruneAction(d), Reasons: d.Reasons, Unsigned: d.Unsigned})
	}
	return msg
}

func pruneDoneMessage(r *repository.PruneReport, took time.Duration) ui.PruneDoneMessage {
	msg := ui.PruneDoneMessage{
		DryRun: r.DryRun, Kept: r.Kept, Removed: r.Forgotten,
		ManifestsDeleted: r.ManifestsDeleted,
		ChunksTotal:      r.ChunksTotal, ChunksReferenced: r.ChunksReferenced, ChunksDeleted: r.ChunksDeleted,
		ChunksYoung: r.ChunksYoung, ChunksRetained: r.ChunksRetained, ChunksMissing: r.ChunksMissing,
		BytesFreed: r.BytesFreed(), BytesRetained: r.ChunkBytesRetained, Cutoff: r.Cutoff,
		DebrisRemoved: r.DebrisRemoved, Warnings: r.Warnings, DurationSeconds: took.Seconds(),
	}
	if !r.RetainedUntil.IsZero() {
		u := r.RetainedUntil
		msg.RetainedUntil = &u
	}
	for _, o := range r.RetainedManifests {
		msg.RetainedManifests = append(msg.RetainedManifests, ui.RetainedObject{Name: o.Name, Until: o.Until})
	}
	for _, s := range r.StaleLocks {
		msg.StaleLocksRemoved = append(msg.StaleLocksRemoved, s.Describe(r.Started))
	}
	return msg
}

func restoreFiles(files []restore.PlannedFile) []ui.RestoreFile {
	out := []ui.RestoreFile{}
	for _, f := range files {
		out = append(out, ui.RestoreFile{Name: f.Name, Type: f.Type, Size: f.Size, Target: f.Target})
	}
	return out
}

// restorePlanMessage is the plan of a restore to vCenter.
func restorePlanMessage(plan *restore.Plan, dryRun bool) ui.RestorePlanMessage {
	msg := ui.RestorePlanMessage{
		DryRun: dryRun, BackupID: plan.BackupID, SourceVM: plan.SourceVM,
		Name: plan.Name, Datastore: plan.Datastore, HomeFolder: plan.HomeFolder, VMXPath: plan.VMXPath,
		Folder: plan.Folder, Pool: plan.Pool, Host: plan.Host, PowerOn: plan.PowerOn, UUID: string(plan.UUID),
		Files: restoreFiles(plan.Files), Keys: []ui.RestoreKey{},
		TotalBytes: plan.TotalSize, FreeBytes: plan.FreeSpace, Warnings: plan.Warnings,
	}
	for _, k := range plan.Keys {
		msg.Keys = append(msg.Keys, ui.RestoreKey{
			KeyID: k.Ref.KeyID, ProviderID: k.Ref.ProviderID, ProviderType: string(k.ProviderType),
			Use: k.Ref.Use, Available: k.Available, Reasons: k.Reasons,
		})
	}
	return msg
}

// restoreDirPlanMessage is the plan of a restore --to-dir of backup m:
// the files it writes into dir.
func restoreDirPlanMessage(m *repository.Manifest, dir string, files []restore.PlannedFile, dryRun bool) ui.RestorePlanMessage {
	msg := ui.RestorePlanMessage{
		DryRun: dryRun, BackupID: m.BackupID, SourceVM: m.VM.Name, Dir: dir, Unsigned: !m.Auth.Signed,
		Files: restoreFiles(files), Keys: []ui.RestoreKey{},
	}
	for _, f := range files {
		msg.TotalBytes += f.Size
	}
	return msg
}

// restoreDoneMessage reports a finished restore; err is set when the VM
// was restored but did not power on.
func restoreDoneMessage(res *restore.Result, err error) ui.RestoreDoneMessage {
	return ui.RestoreDoneMessage{
		BackupID: res.BackupID, SourceVM: res.SourceVM,
		Name: res.Name, MoRef: res.MoRef, VMXPath: res.VMXPath, Dir: res.Dir,
		Files: len(res.Files), Bytes: res.Bytes, DurationSeconds: res.Duration().Seconds(),
		MBPerSecond: res.MBPerSecond(), PoweredOn: res.PoweredOn, Error: errorText(err),
	}
}

// lockMessage is one lock "unlock" found at now; removed when it removed it.
func lockMessage(l repository.LockInfo, now time.Time, removed bool) ui.LockMessage {
	return ui.LockMessage{
		ID: l.ID, Hostname: l.Hostname, PID: l.PID, Exclusive: l.Exclusive, Purpose: l.Purpose,
		Created: l.Created.UTC(), Expires: l.Expires.UTC(), Stale: l.Stale(now), StaleReason: l.HolderGone, Removed: removed,
	}
}

// unlockSummaryMessage closes "unlock": locks found, removed of them.
func unlockSummaryMessage(location string, locks, removed int) ui.UnlockSummaryMessage {
	return ui.UnlockSummaryMessage{Repository: location, Locks: locks, Removed: removed, Kept: locks - removed}
}

// listSummaryMessage closes "list": how many entries, of how many VMs.
func listSummaryMessage(location string, entries []ui.BackupEntryMessage) ui.ListSummaryMessage {
	vms := map[string]bool{}
	for _, e := range entries {
		if e.VM != "" {
			vms[e.VM] = true
		}
	}
	return ui.ListSummaryMessage{Repository: location, Backups: len(entries), VMs: len(vms)}
}

// metricsMessage reports one delivery of a command's metrics.
func metricsMessage(command string, d metrics.Delivery) ui.MetricsMessage {
	m := ui.MetricsMessage{Command: command, Target: "file", File: d.Where, OK: d.Err == nil, Warning: errorText(d.Err)}
	if d.Push {
		m.Target, m.File, m.URL, m.Job, m.Instance = "pushgateway", "", d.Where, d.Job, d.Instance
	}
	return m
}
