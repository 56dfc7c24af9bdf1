package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/internal/pushgateway"
	"github.com/vtpm-backup/vtpm-backup/metrics"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest"
	"github.com/vtpm-backup/vtpm-backup/vsphere/vspheretest/simtest"
)

// TestBackupAndAuditPushMetrics runs a backup (one VM backed up, one not
// found) and an audit with --metrics-push to a real Pushgateway and reads
// the series back from its /metrics: both groups, with the values the
// commands reported.
func TestBackupAndAuditPushMetrics(t *testing.T) {
	pg := pushgateway.StartT(t)
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cli-m", Seed: 21, DiskSize: 16 << 20})
	repo := initLocalRepo(t)
	file := filepath.Join(t.TempDir(), "vtpm_backup_backup.prom")
	args := append([]string{"--json", "--repo", repo}, vcArgs(env)...)

	stdout, stderr, code := cli(t, append(args, "backup", vm.Name, "no-such-vm",
		"--metrics-push", pg.URL, "--metrics-instance", "shard-a", "--metrics-file", file)...)
	if code != exitFailed {
		t.Fatalf("backup with a missing VM: exit %d, want %d: %s", code, exitFailed, stderr)
	}
	msgs := jsonLines(t, stdout)
	done := ofType(msgs, "vm_done")
	delivered := ofType(msgs, "metrics")
	if len(done) != 2 || len(delivered) != 2 || delivered[0]["target"] != "file" || delivered[1]["target"] != "pushgateway" {
		t.Fatalf("vm_done %v, metrics %v", done, delivered)
	}
	for _, d := range delivered {
		if d["ok"] != true || d["command"] != "backup" {
			t.Errorf("metrics message: %v", d)
		}
	}
	if d := delivered[1]; d["job"] != metrics.JobBackup || d["instance"] != "shard-a" || d["url"] != pg.URL {
		t.Errorf("push message: %v", d)
	}
	var read float64
	for _, d := range done {
		if d["vm"] == vm.Name {
			read = d["bytes_read"].(float64)
		}
	}

	stdout, stderr, code = cli(t, append(args[1:], "audit", "--metrics-push", pg.URL, "--metrics-instance", "shard-a")...)
	if code != exitOK || !strings.Contains(stdout, "metrics pushed to "+pg.URL+" (job vtpm-backup-audit, instance shard-a)") {
		t.Fatalf("audit: exit %d\n%s\n%s", code, stdout, stderr)
	}

	fams, err := pg.Families(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	group := func(job string, labels ...string) []string {
		return append([]string{"job", job, "instance", "shard-a"}, labels...)
	}
	for _, w := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"vtpm_backup_backup_success", group(metrics.JobBackup, "vm", vm.Name), 1},
		{"vtpm_backup_backup_success", group(metrics.JobBackup, "vm", "no-such-vm"), 0},
		{"vtpm_backup_backup_read_bytes", group(metrics.JobBackup, "vm", vm.Name), read},
		{"vtpm_backup_backup_vms", group(metrics.JobBackup, "result", "ok"), 1},
		{"vtpm_backup_backup_vms", group(metrics.JobBackup, "result", "failed"), 1},
		{"vtpm_backup_ready", group(metrics.JobAudit, "vm", vm.Name), 1},
		{"vtpm_backup_audit_ready", group(metrics.JobAudit), 1},
		{"vtpm_backup_audit_vms", group(metrics.JobAudit, "verdict", "ready"), 1},
	} {
		if got, ok := pushgateway.Value(fams, w.name, w.labels...); !ok || got != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if read <= 0 {
		t.Errorf("bytes_read %v: the backup read nothing", read)
	}
	if v, ok := pushgateway.Value(fams, "vtpm_backup_backup_last_success_timestamp_seconds", group(metrics.JobBackup, "vm", vm.Name)...); !ok || v < 1e9 {
		t.Errorf("last success timestamp of %s = %v (found %v)", vm.Name, v, ok)
	}
}

// TestBackupMetricsFailureIsWarning: a Pushgateway that does not answer
// and a metrics file that cannot be written do not fail a backup.
func TestBackupMetricsFailureIsWarning(t *testing.T) {
	env := simtest.Start(t)
	vm := simtest.CreateVTPMVM(t, env, vspheretest.VMOptions{Name: "cli-w", Seed: 22, DiskSize: 4 << 20})
	repo := initLocalRepo(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	bad := filepath.Join(t.TempDir(), "missing", "m.prom")
	stdout, stderr, code := cli(t, append(append([]string{"--repo", repo}, vcArgs(env)...),
		"backup", vm.Name, "--metrics-push", closed, "--metrics-file", bad)...)
	if code != exitOK {
		t.Fatalf("backup with unreachable metrics: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "warning: metrics not delivered"); n != 2 {
		t.Errorf("%d metrics warnings, want 2:\n%s", n, stdout)
	}
}

func TestMetricsFlagsUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad scheme", []string{"backup", "vm1", "--metrics-push", "ftp://pgw:9091"}, "http:// or https://"},
		{"credentials", []string{"audit", "--metrics-push", "http://u:secret@pgw:9091"}, "credentials"},
		{"instance without push", []string{"backup", "vm1", "--metrics-instance", "a"}, "--metrics-push"},
		{"dry run", []string{"backup", "vm1", "--dry-run", "--metrics-file", "m.prom"}, "--dry-run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := cli(t, append([]string{"--repo", t.TempDir()}, tc.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "secret") {
				t.Errorf("exit %d, want %d with %q: %s", code, exitUsage, tc.want, stderr)
			}
		})
	}
}

// TestMetricsFromConfigIgnoredByDryRun: a metrics_push of the config file
// does not break "backup --dry-run"; the dry run just sends nothing.
func TestMetricsFromConfigIgnoredByDryRun(t *testing.T) {
	f := metricsFlags{Push: "http://pushgateway:9091", Instance: "a"} // as the config file sets it
	if err := f.check(true); err != nil {
		t.Fatalf("dry run with metrics_push from the config file: %v", err)
	}
	if !f.target().Empty() {
		t.Errorf("a dry run would deliver metrics: %+v", f.target())
	}
	f = metricsFlags{Push: "http://pushgateway:9091", explicit: true}
	if err := f.check(true); err == nil {
		t.Error("--metrics-push on the command line of a dry run: no usage error")
	}
}
