package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vtpm-backup/vtpm-backup/audit"
)

// The audit's metric families. The names are those of the first,
// hand-formatted version: the alert rules of deploy/prometheus use them.
var (
	auditAge = family{"vtpm_backup_last_backup_age_seconds",
		"Age of the latest backup of the VM when the audit ran.", []string{"vm"}}
	auditBackupTime = family{"vtpm_backup_last_backup_timestamp_seconds",
		"Unix time of the latest backup of the VM.", []string{"vm"}}
	auditReady = family{"vtpm_backup_ready",
		"1 when the latest backup of the VM passed every audit check (restorable, keys available, recent), else 0.", []string{"vm"}}
	auditNotReady = family{"vtpm_backup_not_ready",
		"1 for each reason the VM is not ready to restore: no_backup, manifest, objects, nvram, keys, keys_not_checked, too_old, other.", []string{"vm", "reason"}}
	auditSize = family{"vtpm_backup_size_bytes",
		"Plaintext size of the files in the latest backup of the VM.", []string{"vm"}}
	auditStored = family{"vtpm_backup_stored_bytes",
		"Stored (compressed, encrypted) size of the objects the latest backup of the VM references, shared ones included.", []string{"vm"}}
	auditAllReady = family{"vtpm_backup_audit_ready",
		"1 when every audited VM is ready and the repository has no other problem, else 0.", nil}
	auditVMs = family{"vtpm_backup_audit_vms",
		"Number of VMs the audit judged, by verdict (ready, not_ready).", []string{"verdict"}}
	auditTime = family{"vtpm_backup_audit_timestamp_seconds",
		"Unix time the audit ran.", nil}
)

func auditFamilies() []family {
	return []family{auditAge, auditBackupTime, auditReady, auditNotReady, auditSize, auditStored, auditAllReady, auditVMs, auditTime}
}

// Reason labels of vtpm_backup_not_ready: one per audit check, so alerts
// and dashboards can tell a missing key from a stale backup.
const (
	ReasonNoBackup       = "no_backup"
	ReasonManifest       = "manifest"
	ReasonObjects        = "objects"
	ReasonNvram          = "nvram"
	ReasonKeys           = "keys"
	ReasonKeysNotChecked = "keys_not_checked"
	ReasonTooOld         = "too_old"
	// ReasonOther covers a verdict no check above explains (a check
	// added to the audit later).
	ReasonOther = "other"
)

// Reasons returns the reason labels of a VM that is not ready, from the
// checks the audit records; none for a ready VM.
func Reasons(v audit.VMReport) []string {
	if v.Ready {
		return nil
	}
	if v.BackupID == "" {
		return []string{ReasonNoBackup}
	}
	if !v.ManifestOK {
		return []string{ReasonManifest} // nothing else could be checked
	}
	var out []string
	add := func(failed bool, reason string) {
		if failed {
			out = append(out, reason)
		}
	}
	add(!v.ObjectsOK, ReasonObjects)
	add(!v.NvramOK, ReasonNvram)
	add(v.KeysChecked && !v.KeysOK, ReasonKeys)
	add(!v.KeysChecked && !v.KeysOK, ReasonKeysNotChecked)
	add(!v.AgeOK, ReasonTooOld)
	if len(out) == 0 {
		out = append(out, ReasonOther)
	}
	return out
}

// Audit returns the metrics of an audit report: per VM (label vm) its
// verdict, the reasons it is not ready, the age, time and sizes of its
// latest backup; for the run, the overall verdict, the VM counts and when
// it ran.
func Audit(r *audit.Report) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	age, backupTime, ready, notReady := auditAge.gauge(reg), auditBackupTime.gauge(reg), auditReady.gauge(reg), auditNotReady.gauge(reg)
	size, stored := auditSize.gauge(reg), auditStored.gauge(reg)
	vms := auditVMs.gauge(reg)
	counts := map[string]float64{"ready": 0, "not_ready": 0}
	for _, v := range r.VMs {
		set(ready, boolValue(v.Ready), v.VM)
		for _, reason := range Reasons(v) {
			set(notReady, 1, v.VM, reason)
		}
		if v.Ready {
			counts["ready"]++
		} else {
			counts["not_ready"]++
		}
		if v.BackupID == "" {
			continue // no backup: no age, time or size
		}
		set(age, v.Age.Seconds(), v.VM)
		if !v.BackupTime.IsZero() {
			set(backupTime, unixSeconds(v.BackupTime), v.VM)
		}
		set(size, float64(v.Size), v.VM)
		set(stored, float64(v.StoredSize), v.VM)
	}
	for verdict, n := range counts {
		set(vms, n, verdict)
	}
	auditAllReady.gauge(reg).WithLabelValues().Set(boolValue(r.Ready()))
	auditTime.gauge(reg).WithLabelValues().Set(unixSeconds(r.Time))
	return reg
}
