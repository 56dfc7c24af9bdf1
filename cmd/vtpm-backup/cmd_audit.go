package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/audit"
	"github.com/vtpm-backup/vtpm-backup/internal/ui"
	"github.com/vtpm-backup/vtpm-backup/metrics"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// auditOptions are the flags of "vtpm-backup audit".
type auditOptions struct {
	Repo      repoFlags
	Trust     trustFlags
	VCenter   vcenterFlags
	ReadData  bool
	Subset    string
	MaxAge    time.Duration
	Identity  string
	Inventory bool
	Metrics   metricsFlags
	// identityFlag is set when --identity was given on the command line.
	// An identity from VTPM_BACKUP_IDENTITY or the config file is only a
	// default for --read-data: a nightly audit with the environment of a
	// restore host must not fail because of it.
	identityFlag bool
}

// AddFlags registers the flags of the audit command.
func (o *auditOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.Trust.AddFlags(fs)
	o.VCenter.AddFlags(fs)
	fs.BoolVar(&o.ReadData, "read-data", false, "download every stored object and verify its SHA-256 (with --identity: also decrypt and verify the plaintext)")
	fs.StringVar(&o.Subset, "read-data-subset", "", "like --read-data for a random `fraction` of the objects only, e.g. 10% or 0.1")
	fs.DurationVar(&o.MaxAge, "max-age", audit.DefaultMaxAge, "a VM whose latest backup is older than this `duration` is not ready")
	fs.StringVar(&o.Identity, "identity", "", "age identity `file` to decrypt chunks with --read-data (env VTPM_BACKUP_IDENTITY)")
	fs.BoolVar(&o.Inventory, "inventory", false, "also report every vTPM or encrypted VM of the vCenter that has no backup (needs --url)")
	o.Metrics.AddFlags(fs)
}

func newAuditCommand(g *globalOptions) *cobra.Command {
	var opts auditOptions
	cmd := &cobra.Command{
		Use:   "audit [VM...]",
		Short: "Check that the latest backup of each VM can be restored, keys included",
		Long: `Check, for the latest backup of each VM (or of each VM named), whether it
could be restored tonight:

  - the manifest is readable and consistent;
  - every stored object it references is present with the recorded size
    (--read-data: downloaded and its SHA-256 verified, without decrypting;
    --read-data with --identity: also decrypted and checked against its
    chunk ID; --read-data-subset 10%: a random sample only);
  - the backup passes the checks restore's pre-flight makes, in the same
    words: one .vmx, every file in the VM's home folder, a vTPM VM's
    .nvram (and it is intact), a recorded key for an encrypted VM;
  - every key the VM depends on is available on the vCenter given with
    --url / GOVC_URL (the same check restore makes before writing anything),
    and a Native Key Provider serving them has been backed up;
  - the backup is not older than --max-age;
  - with Object Lock (init --object-lock-days), the manifest and a sample of
    its objects are still retained (reported as warnings: the backup is
    restorable today).

--inventory also lists every vTPM or encrypted VM of that vCenter that has
no backup at all (coverage).

Key checks need a vCenter: without --url, a VM whose backup depends on keys
is NOT READY ("keys not checked"), because an encrypted VM whose keys are
missing cannot be powered on after a restore.

The output is a table with one row per VM and its verdict, the reasons of
each NOT READY below it, and a summary. --json prints one audit_vm object
per VM and an audit_summary.

METRICS
  --metrics-file writes Prometheus gauges for node_exporter's textfile
  collector (atomically: the collector never reads half a file);
  --metrics-push sends them to a Pushgateway, replacing the group
  job="vtpm-backup-audit", instance=--metrics-instance (default: the host
  name). Per VM (label vm): vtpm_backup_ready, vtpm_backup_not_ready
  (label reason: no_backup, manifest, objects, nvram, keys,
  keys_not_checked, too_old, other), vtpm_backup_last_backup_age_seconds,
  vtpm_backup_last_backup_timestamp_seconds, vtpm_backup_size_bytes,
  vtpm_backup_stored_bytes; for the run: vtpm_backup_audit_ready,
  vtpm_backup_audit_vms (label verdict), vtpm_backup_audit_timestamp_seconds.
  A file that cannot be written fails the audit (exit 1); a failed push is
  a warning.

The latest backup of a VM is its latest authenticated one (see "vtpm-backup
list" for which keys are trusted). A rejected backup (unsigned, forged, or
signed by a writer key that is not trusted) is a repository problem that
names it: someone wrote to the repository without a trusted writer key.

EXIT STATUS
  0  every audited VM is READY
  1  the audit could not run (repository or vCenter unreachable, ...)
  2  usage error (bad flag, --inventory without --url, bad identity file)
  3  at least one VM is NOT READY, a backup was rejected, or there was
     nothing to audit`,
		Example: `  # nightly, after the backups, against the vCenter you would restore to
  GOVC_URL=vc-dr.example.com GOVC_USERNAME=audit@vsphere.local GOVC_PASSWORD=... \
    vtpm-backup audit --repo s3://s3.example.com/backups/vtpm --inventory \
      --metrics-file /var/lib/node_exporter/textfile/vtpm_backup.prom

  # from a Kubernetes CronJob: push to the Pushgateway instead
  vtpm-backup audit --metrics-push http://pushgateway.monitoring:9091 --metrics-instance prod

  # weekly: read a tenth of the data and decrypt it
  vtpm-backup audit --read-data-subset 10% --identity /secure/vtpm-backup.key

  # one VM, for a script
  vtpm-backup audit win11-ws01 --json | jq 'select(.message_type=="audit_vm") | .reasons'`,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.identityFlag = cmd.Flags().Changed("identity")
			return runAudit(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.ValidArgsFunction = completeRepoVMs(g, &opts.Repo, &opts.Trust)
	return cmd
}

// parseSubset parses --read-data-subset: "10%" or "0.1", in (0, 1].
func parseSubset(s string) (float64, error) {
	t := strings.TrimSpace(s)
	div := 1.0
	if strings.HasSuffix(t, "%") {
		t, div = strings.TrimSuffix(t, "%"), 100
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f/div <= 0 || f/div > 1 {
		return 0, newUsageError(fmt.Errorf("--read-data-subset %q: want a percentage from 0%% to 100%% (e.g. 10%%) or a fraction (e.g. 0.1)", s), "")
	}
	return f / div, nil
}

func runAudit(ctx context.Context, opts auditOptions, g *globalOptions, args []string) error {
	aopts := audit.Options{VMs: args, MaxAge: opts.MaxAge, ReadData: opts.ReadData, Inventory: opts.Inventory, Log: g.logger()}
	if opts.Subset != "" {
		f, err := parseSubset(opts.Subset)
		if err != nil {
			return err
		}
		aopts.ReadData, aopts.Subset = true, f
	}
	if opts.MaxAge <= 0 {
		return newUsageError(fmt.Errorf("--max-age %s: must be positive", opts.MaxAge), "e.g. --max-age 26h for nightly backups")
	}
	if opts.identityFlag && !aopts.ReadData {
		return newUsageError(fmt.Errorf("--identity is only used to decrypt data"), "add --read-data or --read-data-subset")
	}
	if err := opts.Metrics.check(false); err != nil {
		return err
	}
	if opts.Inventory && opts.VCenter.URL == "" {
		return newUsageError(fmt.Errorf("--inventory lists the VMs of a vCenter, and none was given"), "pass --url or set GOVC_URL")
	}

	repo, err := opts.Trust.open(ctx, g, &opts.Repo, opts.Identity)
	if err != nil {
		return err
	}
	defer repo.Close()
	if aopts.ReadData && opts.Identity != "" {
		if err := g.loadIdentity(repo, opts.Identity); err != nil {
			return err
		}
	}
	var vc *vsphere.Client
	if opts.VCenter.URL != "" {
		vc, err = opts.VCenter.connect(ctx, g.lookupEnv)
		if err != nil {
			return err
		}
		defer logout(ctx, vc)
	}

	rep, err := audit.Run(ctx, repo, vc, aopts)
	if err != nil {
		return fmt.Errorf("audit %s: %w", repo.Location(), err)
	}
	// The report is printed whatever happens to the metrics, but it says
	// "metrics written" only once they are. A metrics file that cannot be
	// written fails the audit (the alerts would go blind); a failed push
	// is a warning, as for backup.
	var metricsErr error
	written := ""
	var delivered []metrics.Delivery
	for _, d := range opts.Metrics.target().Deliver(ctx, metrics.JobAudit, metrics.Audit(rep)) {
		switch {
		case !d.Push && d.Err != nil:
			metricsErr = d.Err
			continue
		case !d.Push:
			written = d.Where
		}
		delivered = append(delivered, d)
	}
	printAudit(g.printer(), rep, written, delivered)
	if metricsErr != nil {
		return metricsErr
	}
	if !rep.Ready() {
		msg := fmt.Sprintf("%d of %d VM(s) not ready to restore", rep.NotReady(), len(rep.VMs))
		if len(rep.Problems) > 0 {
			msg += fmt.Sprintf(", %d repository problem(s)", len(rep.Problems))
		}
		return fmt.Errorf("%w: %s: see the reasons above", errNotReady, msg)
	}
	return nil
}

// printAudit prints the table and reasons (text) or the audit_vm and
// audit_summary messages (--json).
func printAudit(p ui.Printer, rep *audit.Report, metricsFile string, delivered []metrics.Delivery) {
	for _, v := range rep.VMs {
		p.JSON(auditVMMessage(v))
	}
	if len(rep.VMs) > 0 {
		t := p.Table("VM", "Backup", "Age", "Size", "Stored", "vTPM", "CBT", "Objects", "Nvram", "Keys", "Verdict")
		for _, v := range rep.VMs {
			t.Row(auditRow(v)...)
		}
		_ = t.Flush()
	}
	for _, v := range rep.VMs {
		if len(v.Reasons) == 0 && len(v.Warnings) == 0 {
			continue
		}
		p.P("\n%s: %s", v.VM, verdict(v.Ready))
		for _, r := range v.Reasons {
			p.P("  - %s", r)
		}
		for _, w := range v.Warnings {
			p.P("  ! warning: %s", w)
		}
	}
	for _, pr := range rep.Problems {
		p.P("\nproblem: %s", pr)
	}
	where := "keys not checked (no vCenter)"
	if rep.VCenter != "" {
		where = "keys checked on " + rep.VCenter
	}
	p.P("\n%d VM(s): %d ready, %d not ready; %s; objects: %s", len(rep.VMs), len(rep.VMs)-rep.NotReady(), rep.NotReady(), where, modeText(rep))
	printMetrics(p, "audit", delivered)
	p.JSON(auditSummaryMessage(rep, metricsFile))
}

// auditRow is the table row of one VM's verdict.
func auditRow(v audit.VMReport) []any {
	if v.BackupID == "" {
		return []any{v.VM, "-", "-", "-", "-", yesNo(v.VTPM), cbtState(v.CBT), "-", "-", "-", verdict(v.Ready)}
	}
	objects := fmt.Sprintf("%d ok", v.Objects)
	if v.ObjectsBad > 0 {
		objects = fmt.Sprintf("%d/%d bad", v.ObjectsBad, v.Objects)
	} else if !v.ManifestOK {
		objects = "-"
	}
	if v.ObjectsRead > 0 {
		objects += fmt.Sprintf(" (%d read)", v.ObjectsRead)
	}
	nvram := "-"
	if v.VTPM && v.ManifestOK {
		nvram = okBad(v.NvramOK)
	}
	keysCol := okBad(v.KeysOK)
	if !v.KeysChecked && !v.KeysOK {
		keysCol = "not checked"
	}
	if !v.ManifestOK {
		keysCol = "-"
	}
	return []any{v.VM, v.BackupID, humanAge(v.Age), humanBytes(v.Size), humanBytes(v.StoredSize), yesNo(v.VTPM), cbtState(v.CBT), objects, nvram, keysCol, verdict(v.Ready)}
}

func modeText(rep *audit.Report) string {
	s := map[string]string{
		"stat":    "presence and size checked",
		"read":    "downloaded and SHA-256 verified (not decrypted)",
		"decrypt": "downloaded, decrypted and verified",
	}[rep.Mode]
	if rep.Subset > 0 && rep.Subset < 1 {
		s += fmt.Sprintf(" for a %g%% sample", rep.Subset*100)
	}
	return s
}

func verdict(ready bool) string {
	if ready {
		return "READY"
	}
	return "NOT READY"
}

func okBad(ok bool) string {
	if ok {
		return "ok"
	}
	return "BAD"
}

// humanAge writes a duration the way people read backup ages: 2d3h, 5h12m,
// 42m, 30s. It rounds to the last unit it shows, as the audit's reasons do
// ("2m0s old" is "2m", not "1m").
func humanAge(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d.Round(time.Hour) >= day:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", d/day, d%day/time.Hour)
	case d.Round(time.Minute) >= time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d.Round(time.Second) >= time.Minute:
		return fmt.Sprintf("%dm", d.Round(time.Minute)/time.Minute)
	}
	return fmt.Sprintf("%ds", d.Round(time.Second)/time.Second)
}
