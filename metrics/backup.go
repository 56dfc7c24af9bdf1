package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vtpm-backup/vtpm-backup/backup"
)

// The backup's metric families: per VM (label vm) and for the run.
var (
	backupSuccess = family{"vtpm_backup_backup_success",
		"1 when the VM was backed up in the last run, 0 when its backup failed.", []string{"vm"}}
	backupLastSuccess = family{"vtpm_backup_backup_last_success_timestamp_seconds",
		"Unix time of the VM's latest successful backup: this run's, or for a failed VM the one before it (absent when there was none).", []string{"vm"}}
	backupDuration = family{"vtpm_backup_backup_duration_seconds",
		"How long the VM's backup took in the last run, failed ones included.", []string{"vm"}}
	backupRead = family{"vtpm_backup_backup_read_bytes",
		"Bytes read from the VM's files in the last run.", []string{"vm"}}
	backupUploaded = family{"vtpm_backup_backup_uploaded_bytes",
		"Stored (compressed, encrypted) bytes uploaded for the VM in the last run.", []string{"vm"}}
	backupChunks = family{"vtpm_backup_backup_chunks",
		"Chunks of the VM's last backup by state: new (uploaded), known (already stored), zero (not stored), reused (taken unread from the previous backup: CBT reported no change).", []string{"vm", "state"}}
	backupDiskBytes = family{"vtpm_backup_backup_disk_bytes",
		"Disk data of the VM's last backup by state: read (from the datastore) or skipped (not read: Changed Block Tracking reported it unchanged or unallocated).", []string{"vm", "state"}}
	backupVMs = family{"vtpm_backup_backup_vms",
		"Number of VMs of the last run, by result (ok, failed).", []string{"result"}}
	backupRunTime = family{"vtpm_backup_backup_run_timestamp_seconds",
		"Unix time the last backup run finished.", nil}
	backupRunDuration = family{"vtpm_backup_backup_run_duration_seconds",
		"How long the last backup run took.", nil}
)

func backupFamilies() []family {
	return []family{backupSuccess, backupLastSuccess, backupDuration, backupRead, backupUploaded, backupChunks, backupDiskBytes, backupVMs, backupRunTime, backupRunDuration}
}

// BackupRun is one run of the backup command: its VMs' results and when it
// started and finished.
type BackupRun struct {
	Started, Finished time.Time
	Results           []*backup.Result
}

// Backup returns the metrics of a backup run.
func Backup(run BackupRun) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	success, last, duration := backupSuccess.gauge(reg), backupLastSuccess.gauge(reg), backupDuration.gauge(reg)
	read, uploaded, chunks := backupRead.gauge(reg), backupUploaded.gauge(reg), backupChunks.gauge(reg)
	disk := backupDiskBytes.gauge(reg)
	vms := backupVMs.gauge(reg)
	ok, failed := 0.0, 0.0
	for _, r := range run.Results {
		set(success, boolValue(r.Err == nil), r.VM)
		switch {
		case r.Err == nil:
			ok++
			set(last, unixSeconds(r.Finished), r.VM)
		case !r.Previous.IsZero():
			failed++
			set(last, unixSeconds(r.Previous), r.VM)
		default:
			failed++
		}
		if !r.Started.IsZero() && !r.Finished.IsZero() {
			set(duration, r.Finished.Sub(r.Started).Seconds(), r.VM)
		}
		set(read, float64(r.BytesRead), r.VM)
		set(uploaded, float64(r.BytesUploaded), r.VM)
		set(chunks, float64(r.ChunksNew), r.VM, "new")
		set(chunks, float64(r.ChunksKnown), r.VM, "known")
		set(chunks, float64(r.ChunksZero), r.VM, "zero")
		set(chunks, float64(r.ChunksReused), r.VM, "reused")
		set(disk, float64(r.DiskBytesRead), r.VM, "read")
		set(disk, float64(r.BytesSkipped), r.VM, "skipped")
	}
	set(vms, ok, "ok")
	set(vms, failed, "failed")
	backupRunTime.gauge(reg).WithLabelValues().Set(unixSeconds(run.Finished))
	backupRunDuration.gauge(reg).WithLabelValues().Set(run.Finished.Sub(run.Started).Seconds())
	return reg
}
