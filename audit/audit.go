package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/storage"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// DefaultMaxAge is the default Options.MaxAge: a nightly backup plus two
// hours of slack, so one late run does not page anyone but a missed night
// does.
const DefaultMaxAge = 26 * time.Hour

// DefaultParallel is the default number of concurrent object checks.
const DefaultParallel = 8

// DefaultRetentionSample is how many chunk objects per backup have their
// Object Lock retention read (one request each) besides the manifest.
const DefaultRetentionSample = 16

// maxListed bounds how many problems of one kind a reason names, so a
// deleted data directory does not produce a million-line report.
const maxListed = 5

// ErrNoVCenter: an option that needs a vCenter (Inventory) was given
// without one.
var ErrNoVCenter = errors.New("no vCenter given")

// Options choose what Run checks.
type Options struct {
	// VMs restricts the audit to these VM names; empty means every VM with
	// a backup (and, with Inventory, every vTPM or encrypted VM).
	VMs []string
	// MaxAge is the oldest a latest backup may be; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// ReadData downloads stored objects and checks their SHA-256 against
	// the manifest instead of only their presence and size. When the
	// repository has identities (SetIdentities) the objects are also
	// decrypted and their plaintext checked against the chunk ID.
	ReadData bool
	// Subset is the fraction (0 < Subset ≤ 1) of objects ReadData reads,
	// chosen at random; 0 means all. Objects not read are still checked
	// for presence and size.
	Subset float64
	// Inventory also reports every vTPM or encrypted VM of the vCenter
	// that has no backup in the repository. It needs a vCenter.
	Inventory bool
	// Parallel bounds concurrent object checks; 0 means DefaultParallel.
	Parallel int
	// RetentionSample is the number of chunk objects per backup whose
	// retention is read when the repository uses Object Lock; 0 means
	// DefaultRetentionSample.
	RetentionSample int
	// Clock tells the time ages are measured at; nil means the
	// repository's clock.
	Clock clock.Clock
	// Log receives each step of the audit at info level (catalog,
	// manifests, inventory, objects, keys, each VM's verdict) with its
	// duration; nil logs nothing.
	Log *slog.Logger
}

// Report is the outcome of Run.
type Report struct {
	// Time is when the audit ran; ages are relative to it.
	Time time.Time
	// VCenter names the vCenter keys were checked on; "" when none.
	VCenter string
	MaxAge  time.Duration
	// Mode is "stat" (presence and size), "read" (stored SHA-256) or
	// "decrypt" (plaintext checked against chunk IDs too).
	Mode   string
	Subset float64
	// VMs has one row per VM, sorted by name.
	VMs []VMReport
	// Problems are repository-level findings not tied to one VM (an empty
	// repository, a manifest too damaged to name its VM). Any problem
	// makes the audit not ready.
	Problems []string
}

// Ready reports whether every VM is ready and nothing else is wrong. An
// audit that found nothing to audit is not ready: an empty result is more
// often a wrong --repo than a site without VMs.
func (r *Report) Ready() bool {
	if len(r.VMs) == 0 || len(r.Problems) > 0 {
		return false
	}
	for _, v := range r.VMs {
		if !v.Ready {
			return false
		}
	}
	return true
}

// NotReady returns the number of VMs that are not ready.
func (r *Report) NotReady() int {
	n := 0
	for _, v := range r.VMs {
		if !v.Ready {
			n++
		}
	}
	return n
}

// VMReport is the verdict on one VM's latest backup.
type VMReport struct {
	VM string
	// BackupID is "" when the VM has no backup.
	BackupID   string
	BackupTime time.Time
	Age        time.Duration
	// Size is the plaintext size of the backup's files; StoredSize the
	// size of the stored objects it references (shared ones included).
	Size, StoredSize int64
	VTPM             bool
	// CBT is whether Changed Block Tracking was on for the VM at its
	// latest backup (nil: not recorded, or from the inventory).
	CBT        *bool
	ManifestOK bool
	// Restorable: the manifest passes the checks restore's pre-flight
	// makes (keys.Restorability); the reasons say which failed.
	Restorable bool
	// Objects is the number of stored objects the backup references;
	// ObjectsRead how many were downloaded (ReadData) and ObjectsBad how
	// many failed a check.
	Objects, ObjectsRead, ObjectsBad int
	ObjectsOK                        bool
	// NvramOK: the backup holds a .nvram whose objects passed (always true
	// for a VM without vTPM).
	NvramOK bool
	// KeysChecked: the keys were checked on a vCenter; KeysOK: they are
	// available there and their providers are safe (see keys.Readiness).
	KeysChecked, KeysOK bool
	// KeyStatuses are the per-key answers of the vCenter.
	KeyStatuses []keys.KeyStatus
	// AgeOK: the backup is not older than MaxAge.
	AgeOK bool
	// Retention is set when the repository uses Object Lock.
	Retention *Retention
	Ready     bool
	// Reasons say why the VM is not ready, each naming the object and the
	// remedy where there is one.
	Reasons []string
	// Warnings do not change the verdict (e.g. retention findings: the
	// backup is restorable today).
	Warnings []string
}

// Retention is the Object Lock state of a backup's manifest and a sample
// of its chunk objects.
type Retention struct {
	// Checked objects (manifest included) and how many were retained.
	Checked, Retained int
	// Until is the earliest retention end among the checked objects that
	// are retained.
	Until time.Time
}

// Run audits the latest backup of each VM of repo. vc is the target
// vCenter for the key checks; nil is allowed, and then every VM whose
// backup depends on keys is not ready (see the package doc). An error means
// the audit itself could not run (repository unreadable, wrong identity);
// findings are in the Report.
func Run(ctx context.Context, repo *repository.Repository, vc *vsphere.Client, opts Options) (*Report, error) {
	opts = withDefaults(opts, repo)
	if err := opts.check(vc); err != nil {
		return nil, err
	}
	start := opts.Clock.Now()
	cat, err := repository.LoadCatalog(ctx, repo)
	if err != nil {
		return nil, err
	}
	opts.logStep("catalog loaded", start, "repository", repo.Location(), "vms", len(cat.VMs()))
	rep := newReport(repo, vc, opts)
	names := opts.VMs
	if len(names) == 0 {
		names = cat.VMs()
		for _, b := range cat.Unattributed {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: manifest unreadable, its VM is unknown: %v", b.ID, b.Err))
		}
	}
	rep.Problems = append(rep.Problems, rejectedProblems(cat, opts.VMs)...)
	start = opts.Clock.Now()
	rows, audited, manifests, err := readLatest(ctx, repo, cat, names)
	if err != nil {
		return nil, err
	}
	opts.logStep("latest manifests read", start, "vms", len(rows), "manifests", len(manifests))
	if opts.Inventory {
		start = opts.Clock.Now()
		if err := addUncovered(ctx, vc, opts, rows); err != nil {
			return nil, err
		}
		opts.logStep("inventory listed", start, "vcenter", vc.Host(), "vms", len(rows))
	}
	if err := judge(ctx, repo, vc, opts, rep.Time, audited, manifests); err != nil {
		return nil, err
	}
	rep.finish(rows, repo.Location())
	for _, v := range rep.VMs {
		opts.Log.Info("VM audited", "vm", v.VM, "backup_id", v.BackupID, "ready", v.Ready, "reasons", v.Reasons)
	}
	return rep, nil
}

// check refuses options that cannot work.
func (o Options) check(vc *vsphere.Client) error {
	if o.Inventory && vc == nil {
		return fmt.Errorf("%w: the inventory check lists the VMs of a vCenter", ErrNoVCenter)
	}
	if o.Subset < 0 || o.Subset > 1 || math.IsNaN(o.Subset) {
		return fmt.Errorf("read-data subset %v: must be a fraction from 0 to 1", o.Subset)
	}
	return nil
}

// newReport starts the report: when, where and how deep the audit looks.
func newReport(repo *repository.Repository, vc *vsphere.Client, opts Options) *Report {
	rep := &Report{Time: opts.Clock.Now(), MaxAge: opts.MaxAge, Mode: "stat", Subset: opts.Subset}
	if opts.ReadData {
		rep.Mode = "read"
		if repo.HasIdentities() {
			rep.Mode = "decrypt"
		}
	}
	if vc != nil {
		rep.VCenter = vc.Host()
	}
	return rep
}

// readLatest makes a row for each VM name and reads the manifest of its
// latest backup. audited are the rows whose manifest is readable, in the
// order of manifests. A VM without a backup or with an invalid manifest
// gets its reason; other read errors fail the audit.
func readLatest(ctx context.Context, repo *repository.Repository, cat *repository.Catalog, names []string) (rows map[string]*VMReport, audited []*VMReport, manifests []*repository.Manifest, err error) {
	rows = map[string]*VMReport{}
	var order []*VMReport
	var latest []repository.Backup
	for _, name := range names {
		if _, dup := rows[name]; dup {
			continue
		}
		row := &VMReport{VM: name}
		rows[name] = row
		b, ok := cat.Latest(name)
		if !ok {
			row.Reasons = append(row.Reasons, fmt.Sprintf("no backup of VM %s in %s", name, repo.Location()))
			continue
		}
		row.BackupID, row.BackupTime = b.ID, b.Time
		order = append(order, row)
		latest = append(latest, b)
	}
	// The catalog holds headers; the audit needs the chunk lists. A
	// thousand VMs are a thousand small reads, whose latency (not their
	// bandwidth) is the cost: read them a few at a time.
	ms := make([]*repository.Manifest, len(latest))
	errs := make([]error, len(latest))
	parallel(len(latest), manifestReaders, func(i int) {
		if errs[i] = latest[i].Err; errs[i] == nil {
			ms[i], errs[i] = repo.ReadManifest(ctx, latest[i].ID)
		}
	})
	for i, row := range order {
		m, err := ms[i], errs[i]
		if errors.Is(err, repository.ErrManifestNotFound) {
			err = fmt.Errorf("removed while the audit ran (a prune?): run the audit again: %w", err)
		} else if err != nil && !errors.Is(err, repository.ErrCorruptManifest) && latest[i].Err == nil {
			return nil, nil, nil, err
		}
		if err != nil {
			row.Reasons = append(row.Reasons, fmt.Sprintf("latest backup %s: manifest invalid: %v", latest[i].ID, err))
			continue
		}
		row.ManifestOK = true
		if !m.Auth.Signed {
			row.Warnings = append(row.Warnings, fmt.Sprintf("backup %s is UNSIGNED, accepted by --allow-unsigned: nothing proves a backup host of this repository wrote it", m.BackupID))
		}
		audited = append(audited, row)
		manifests = append(manifests, m)
	}
	return rows, audited, manifests, nil
}

// manifestReaders bounds concurrent manifest reads.
const manifestReaders = 16

// parallel calls f(i) for every i in [0, n), at most limit at a time, and
// returns when all calls have.
func parallel(n, limit int, f func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// judge checks the stored objects and keys of the audited backups and
// fills each row: facts and age, objects and .nvram, keys, retention.
func judge(ctx context.Context, repo *repository.Repository, vc *vsphere.Client, opts Options, now time.Time, audited []*VMReport, manifests []*repository.Manifest) error {
	start := opts.Clock.Now()
	results, err := checkObjects(ctx, repo, manifests, opts)
	if err != nil {
		return err
	}
	read, bad := 0, 0
	for _, r := range results {
		if r.read {
			read++
		}
		if r.err != nil {
			bad++
		}
	}
	opts.logStep("stored objects checked", start, "objects", len(results), "read", read, "bad", bad)
	start = opts.Clock.Now()
	kc := &keyChecker{vc: vc}
	kc.prepare(ctx, manifests)
	if vc != nil {
		args := []any{"vcenter", vc.Host(), "keys", len(kc.status)}
		if kc.checkErr != nil {
			args = append(args, "error", kc.checkErr.Error())
		}
		opts.logStep("keys checked", start, args...)
	}
	for i, row := range audited {
		m := manifests[i]
		fillFacts(row, m, now, opts.MaxAge)
		judgeObjects(row, m, results)
		judgeRestorability(row, m)
		kc.judge(row, m)
		judgeRetention(ctx, repo, row, m, now, opts.RetentionSample)
	}
	return nil
}

// finish gives each row its verdict and the report its rows, by VM name.
// An audit that found nothing is a problem: more often a wrong --repo than
// a site without VMs.
func (rep *Report) finish(rows map[string]*VMReport, location string) {
	for _, row := range rows {
		row.Ready = len(row.Reasons) == 0
		rep.VMs = append(rep.VMs, *row)
	}
	sort.Slice(rep.VMs, func(i, j int) bool { return rep.VMs[i].VM < rep.VMs[j].VM })
	if len(rep.VMs) == 0 && len(rep.Problems) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("no backups in %s: check --repo, or run a backup", location))
	}
}

// rejectedProblems names every backup that failed authentication (all, or
// those claiming one of vms): a planted or foreign manifest means someone
// wrote to the repository without a trusted writer key, so the repository
// is not ready until someone looks, whatever the genuine backups say.
func rejectedProblems(cat *repository.Catalog, vms []string) []string {
	var out []string
	for _, b := range cat.Rejected() {
		if len(vms) > 0 && !slices.Contains(vms, b.VM) {
			continue
		}
		claim := ""
		if b.VM != "" {
			claim = fmt.Sprintf(" (claims to be a backup of VM %s)", b.VM)
		}
		out = append(out, fmt.Sprintf("%v%s: it is never restored; find out who wrote it, then delete %s and %s",
			b.Err, claim, repository.ManifestObjectName(b.ID), repository.SignatureObjectName(b.ID)))
	}
	return out
}

func withDefaults(o Options, repo *repository.Repository) Options {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.RetentionSample <= 0 {
		o.RetentionSample = DefaultRetentionSample
	}
	if o.Clock == nil {
		o.Clock = repo.Clock()
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// logStep logs a finished step of the audit with its duration since start.
func (o Options) logStep(msg string, start time.Time, args ...any) {
	o.Log.Info(msg, append(args, "duration", o.Clock.Now().Sub(start))...)
}

// fillFacts copies the manifest's facts into the row and judges the age.
func fillFacts(row *VMReport, m *repository.Manifest, now time.Time, maxAge time.Duration) {
	if !m.Finished.IsZero() {
		row.BackupTime = m.Finished
	}
	row.Age = max(now.Sub(row.BackupTime), 0)
	row.Size, row.StoredSize = m.TotalSize(), m.StoredSize()
	row.VTPM, row.CBT = m.VM.VTPM, m.VM.ChangeTracking
	row.AgeOK = row.Age <= maxAge
	if !row.AgeOK {
		row.Reasons = append(row.Reasons, fmt.Sprintf("latest backup %s is %s old, older than the maximum age %s: check that the backup job runs and succeeds",
			m.BackupID, row.Age.Round(time.Minute), maxAge))
	}
}

// addUncovered adds a row for every vTPM or encrypted VM of the vCenter
// (restricted to opts.VMs when given) that has no row yet, i.e. no backup.
func addUncovered(ctx context.Context, vc *vsphere.Client, opts Options, rows map[string]*VMReport) error {
	vms, err := vc.ListVMs(ctx, "")
	if err != nil {
		return fmt.Errorf("inventory of %s: %w", vc.Host(), err)
	}
	want := map[string]bool{}
	for _, n := range opts.VMs {
		want[n] = true
	}
	for _, e := range vms {
		if e.Template || (!e.VTPM && e.KeyID == nil) || (len(want) > 0 && !want[e.Name]) {
			continue
		}
		if _, ok := rows[e.Name]; ok {
			continue
		}
		kind := "encrypted"
		if e.VTPM {
			kind = "vTPM"
		}
		rows[e.Name] = &VMReport{VM: e.Name, VTPM: e.VTPM, Reasons: []string{
			fmt.Sprintf("%s VM %s (%s) on %s has no backup: add it to the backup job", kind, e.Name, e.Ref.Value, vc.Host()),
		}}
	}
	return nil
}

// objectKey identifies a stored object as one manifest recorded it: two
// manifests recording different hashes for one chunk are checked apart.
type objectKey struct {
	id string
	so repository.StoredObject
}

// objectResult is the outcome of checking one stored object.
type objectResult struct {
	read bool
	err  error
}

// checkObjects checks every stored object the manifests reference, once
// even when shared, with opts.Parallel workers: Stat for presence and size,
// VerifyStored or Read for the objects chosen for reading.
func checkObjects(ctx context.Context, repo *repository.Repository, manifests []*repository.Manifest, opts Options) (map[objectKey]objectResult, error) {
	var all []objectKey
	seen := map[objectKey]bool{}
	for _, m := range manifests {
		ids := make([]string, 0, len(m.Objects))
		for id := range m.Objects {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			k := objectKey{id: id, so: m.Objects[id]}
			if !seen[k] {
				seen[k] = true
				all = append(all, k)
			}
		}
	}
	read := map[objectKey]bool{}
	if opts.ReadData {
		n := len(all)
		if opts.Subset > 0 && opts.Subset < 1 {
			n = int(math.Ceil(float64(n) * opts.Subset))
		}
		for _, i := range rand.Perm(len(all))[:n] {
			read[all[i]] = true
		}
	}
	decrypt := repo.HasIdentities()

	results := make(map[objectKey]objectResult, len(all))
	var mu sync.Mutex
	work := make(chan objectKey)
	var wg sync.WaitGroup
	for range min(opts.Parallel, max(len(all), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr := repo.NewChunkReader()
			defer cr.Close()
			var buf []byte
			for k := range work {
				res := objectResult{read: read[k]}
				res.err = checkObject(ctx, repo, cr, k, res.read, decrypt, &buf)
				mu.Lock()
				results[k] = res
				mu.Unlock()
			}
		}()
	}
	for _, k := range all {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check stored objects: %w", err)
	}
	for _, r := range results {
		if errors.Is(r.err, repository.ErrWrongIdentity) {
			return nil, r.err
		}
	}
	return results, nil
}

func checkObject(ctx context.Context, repo *repository.Repository, cr *repository.ChunkReader, k objectKey, read, decrypt bool, buf *[]byte) error {
	cid, err := repository.ParseChunkID(k.id)
	if err != nil {
		return err // Validate refuses such manifests; kept for safety
	}
	name := repository.ChunkObjectName(cid)
	switch {
	case read && decrypt:
		*buf, err = cr.Read(ctx, cid, &k.so, *buf)
	case read:
		err = cr.VerifyStored(ctx, cid, k.so)
	default:
		var fi storage.ObjectInfo
		fi, err = repo.Backend().Stat(ctx, name)
		if err == nil && fi.Size != k.so.StoredSize {
			err = fmt.Errorf("%w: object %s is %d bytes, manifest recorded %d", repository.ErrObjectCorrupt, name, fi.Size, k.so.StoredSize)
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("chunk object %s is missing: %w", name, storage.ErrNotFound)
	}
	return err
}

// judgeObjects turns the object results of m into the row's counters,
// nvram verdict and reasons, naming the file each bad chunk belongs to.
func judgeObjects(row *VMReport, m *repository.Manifest, results map[objectKey]objectResult) {
	fileOf := map[string]string{}
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if _, ok := fileOf[c]; !ok && c != repository.ZeroChunk {
				fileOf[c] = f.Name
			}
		}
	}
	ids := make([]string, 0, len(m.Objects))
	for id := range m.Objects {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	bad := map[string]bool{}
	var listed []string
	for _, id := range ids {
		r := results[objectKey{id: id, so: m.Objects[id]}]
		row.Objects++
		if r.read {
			row.ObjectsRead++
		}
		if r.err == nil {
			continue
		}
		row.ObjectsBad++
		bad[id] = true
		if len(listed) < maxListed {
			listed = append(listed, fmt.Sprintf("file %s: %v", fileOf[id], r.err))
		}
	}
	row.ObjectsOK = row.ObjectsBad == 0
	row.Reasons = append(row.Reasons, listed...)
	if row.ObjectsBad > len(listed) {
		row.Reasons = append(row.Reasons, fmt.Sprintf("and %d more bad stored objects", row.ObjectsBad-len(listed)))
	}
	if row.ObjectsBad > 0 {
		row.Reasons = append(row.Reasons, fmt.Sprintf("backup %s cannot be fully restored: run a new backup of %s (its chunks will be uploaded again)", m.BackupID, m.VM.Name))
	}

	nvrams := m.FileByType(repository.FileNvram)
	row.NvramOK = true
	if m.VM.VTPM && len(nvrams) == 0 {
		row.NvramOK = false // the reason is keys.Restorability's
	}
	for _, f := range nvrams {
		for _, c := range f.Chunks {
			if bad[c] {
				row.NvramOK = false
			}
		}
	}
	if !row.NvramOK && len(nvrams) > 0 {
		row.Reasons = append(row.Reasons, fmt.Sprintf("the .nvram of backup %s is damaged: the vTPM state (BitLocker keys, Windows Hello, ...) cannot be restored from it", m.BackupID))
	}
}

// judgeRestorability runs the checks restore's pre-flight runs on the
// manifest (keys.Restorability), so audit never calls ready what restore
// refuses.
func judgeRestorability(row *VMReport, m *repository.Manifest) {
	r := keys.Restorability(m)
	row.Restorable = len(r.Problems) == 0
	for _, p := range r.Problems {
		row.Reasons = append(row.Reasons, "NOT READY for vCenter restore: "+p)
	}
	row.Warnings = append(row.Warnings, r.Warnings...)
}

// keyChecker checks keys on one vCenter. It asks once for every key of
// every audited backup (one keys.Check: one provider listing, one
// QueryCryptoKeyStatus), instead of once per VM, because an audit of a
// thousand VMs must not make thousands of calls (and provider health
// queries that contact the KMS).
type keyChecker struct {
	vc *vsphere.Client
	// status is the answer for each (provider, key) pair.
	status    map[keyPair]keys.KeyStatus
	checkErr  error
	providers []keys.Provider
}

// keyPair identifies a key regardless of what it protects in which VM.
type keyPair struct{ provider, key string }

// prepare checks the keys of all manifests at once.
func (kc *keyChecker) prepare(ctx context.Context, manifests []*repository.Manifest) {
	if kc.vc == nil {
		return
	}
	kc.status = map[keyPair]keys.KeyStatus{}
	var refs []keys.KeyRef
	var recorded []keys.Provider
	seenProvider := map[string]bool{}
	for _, m := range manifests {
		k := keys.FromManifest(m)
		for _, ref := range k.Refs() {
			kp := keyPair{ref.ProviderID, ref.KeyID}
			if _, ok := kc.status[kp]; !ok {
				kc.status[kp] = keys.KeyStatus{}
				refs = append(refs, ref)
			}
		}
		for _, p := range k.Providers {
			if !seenProvider[p.ID] {
				seenProvider[p.ID] = true
				recorded = append(recorded, p)
			}
		}
	}
	if len(refs) == 0 {
		return
	}
	statuses, err := keys.Check(ctx, kc.vc.Vim25(), refs, recorded)
	if err != nil {
		kc.checkErr = err
		return
	}
	for _, st := range statuses {
		kc.status[keyPair{st.Ref.ProviderID, st.Ref.KeyID}] = st
	}
	// Readiness judges Native Key Provider backups from the current
	// providers; without them it falls back to what the manifest recorded.
	if ps, err := keys.ListProviders(ctx, kc.vc.Vim25()); err == nil {
		kc.providers = ps
	}
}

// judge reports the keys of m as restore would check them, with
// keys.Readiness's reasons: missing keys, unbacked Native Key Providers.
func (kc *keyChecker) judge(row *VMReport, m *repository.Manifest) {
	k := keys.FromManifest(m)
	refs := k.Refs()
	if kc.vc == nil {
		// No vCenter: the availability of each key is unknown; the other
		// finding of Readiness (the recorded NKP backup state) is still
		// worth reporting.
		assumed := make([]keys.KeyStatus, 0, len(refs))
		for _, ref := range refs {
			assumed = append(assumed, keys.KeyStatus{Ref: ref, Available: true})
		}
		reasons := keys.Readiness(k, assumed, nil, "")
		row.Reasons = append(row.Reasons, reasons...)
		if len(refs) > 0 {
			row.Reasons = append(row.Reasons, fmt.Sprintf("%d key(s) not checked: no vCenter given (pass --url or set GOVC_URL to the vCenter you would restore to)", len(refs)))
			return
		}
		// A VM without keys needs no vCenter, unless it should have had
		// one (a Restorability problem).
		row.KeysOK = len(reasons) == 0 && !keys.NeedsVMKey(m)
		return
	}
	row.KeysChecked = true
	vcName := kc.vc.Host()
	if len(refs) > 0 && kc.checkErr != nil {
		row.Reasons = append(row.Reasons, fmt.Sprintf("keys could not be checked on %s: %v", vcName, kc.checkErr))
		return
	}
	statuses := make([]keys.KeyStatus, 0, len(refs))
	for _, ref := range refs {
		st := kc.status[keyPair{ref.ProviderID, ref.KeyID}]
		st.Ref = ref // the same key may protect something else here
		statuses = append(statuses, st)
	}
	row.KeyStatuses = statuses
	if note := keys.ProvidersFromBackupNote(statuses, vcName); note != "" {
		row.Warnings = append(row.Warnings, note)
	}
	reasons := keys.Readiness(k, statuses, kc.providers, vcName)
	row.KeysOK = len(reasons) == 0 && !keys.NeedsVMKey(m)
	row.Reasons = append(row.Reasons, reasons...)
}

// judgeRetention reads the Object Lock retention of the manifest and of a
// sample of chunk objects when the repository promises retention. Findings
// are warnings: the backup is restorable today, retention guards against
// its deletion tomorrow.
func judgeRetention(ctx context.Context, repo *repository.Repository, row *VMReport, m *repository.Manifest, now time.Time, sample int) {
	days := repo.Config().ObjectLockDays
	if days <= 0 {
		return
	}
	ret, ok := repo.Backend().(storage.Retainer)
	if !ok {
		row.Warnings = append(row.Warnings, fmt.Sprintf("the repository requires %d days of Object Lock but %s cannot report retention", days, repo.Location()))
		return
	}
	names := []string{repository.ManifestObjectName(m.BackupID)}
	ids := make([]string, 0, len(m.Objects))
	for id := range m.Objects {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > sample {
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:sample]
	}
	for _, id := range ids {
		cid, err := repository.ParseChunkID(id)
		if err == nil {
			names = append(names, repository.ChunkObjectName(cid))
		}
	}
	r := &Retention{}
	var unretained []string
	for _, name := range names {
		until, err := ret.Retention(ctx, name)
		if err != nil {
			row.Warnings = append(row.Warnings, fmt.Sprintf("retention of %s could not be read: %v", name, err))
			continue
		}
		r.Checked++
		if !until.After(now) {
			unretained = append(unretained, name)
			continue
		}
		r.Retained++
		if r.Until.IsZero() || until.Before(r.Until) {
			r.Until = until
		}
	}
	row.Retention = r
	if len(unretained) > 0 {
		shown := unretained[:min(len(unretained), maxListed)]
		row.Warnings = append(row.Warnings, fmt.Sprintf("%d of %d checked objects are not under Object Lock retention (the repository asks for %d days): %v", len(unretained), r.Checked, days, shown))
	}
}
