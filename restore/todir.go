package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vtpm-backup/vtpm-backup/internal/clock"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// DirOptions tune PlanDir.
type DirOptions struct {
	// Patterns select files by name (path.Match, e.g. "*.nvram"); none
	// selects every file.
	Patterns []string
	// Workers decode chunks in parallel; default DefaultWorkers.
	Workers int
	// Events receives progress; may be nil.
	Events Events
	// Clock times the restore; nil means the repository's clock.
	Clock clock.Clock
}

// tempSuffix marks a file being written; it is renamed (linked) into place
// only once complete and verified.
const tempSuffix = ".vtpm-restore-partial"

// DirPlan is the outcome of PlanDir: every check passed, and these are the
// files RunDir writes. Its exported fields are for display (dry run).
type DirPlan struct {
	BackupID string
	SourceVM string
	// Dir is the local target folder.
	Dir string
	// Files are the selected files; Target is the local path.
	Files     []PlannedFile
	TotalSize int64

	m       *repository.Manifest
	files   []repository.File // the selected manifest files, as Files
	workers int
	events  Events
	clock   clock.Clock
}

// PlanDir runs every check a restore of the files of backup m selected by
// opts.Patterns into the local folder dir needs, and writes nothing: the
// manifest is valid, the patterns select files with distinct names
// (ErrBadTarget), dir is a folder or missing (ErrBadTarget), no target file
// exists (ErrCollision: restore never overwrites) and the repository's
// identity decrypts a sample chunk. It needs no vCenter.
func PlanDir(ctx context.Context, repo *repository.Repository, m *repository.Manifest, dir string, opts DirOptions) (*DirPlan, error) {
	ev := opts.Events
	if ev == nil {
		ev = NopEvents{}
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: no target folder given", ErrBadTarget)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	files, err := selectFiles(m, opts.Patterns)
	if err != nil {
		return nil, err
	}
	p := &DirPlan{
		BackupID: m.BackupID, SourceVM: m.VM.Name, Dir: dir,
		m: m, files: files, workers: opts.Workers, events: ev, clock: opts.Clock,
	}
	if p.clock == nil {
		p.clock = repo.Clock()
	}
	for _, f := range files {
		p.Files = append(p.Files, PlannedFile{Name: f.Name, Type: f.Type, Size: f.Size, Target: filepath.Join(dir, f.Name)})
		p.TotalSize += f.Size
	}
	if err := p.checkTargets(); err != nil {
		return nil, err
	}
	ev.Status("checking the identity")
	if err := checkIdentity(ctx, repo, m); err != nil {
		return nil, err
	}
	return p, nil
}

// checkTargets refuses a dir that is not a folder and target files that
// exist.
func (p *DirPlan) checkTargets() error {
	for _, f := range p.Files {
		if _, err := os.Lstat(f.Target); err == nil {
			return fmt.Errorf("%w: %s exists: restore never overwrites; choose an empty --to-dir or move the file away", ErrCollision, f.Target)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", f.Target, err)
		}
	}
	if fi, err := os.Stat(p.Dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a folder", ErrBadTarget, p.Dir)
	}
	return nil
}

// RunDir writes the files planned by PlanDir into the plan's folder
// (created when missing), as they were on the datastore: for an encrypted
// VM that is still vSphere's ciphertext, decrypted only from the
// repository's encryption.
//
// It never overwrites: the targets are checked again first (ErrCollision
// before anything is written), and each file is written to a temporary
// name, verified (every chunk and the whole-file SHA-256) and then linked
// into place, which fails if the target appeared meanwhile. On failure or
// cancellation the files this call created are removed.
func RunDir(ctx context.Context, repo *repository.Repository, plan *DirPlan) (res *Result, err error) {
	if plan == nil || plan.m == nil {
		return nil, errors.New("restore: RunDir needs a plan from PlanDir")
	}
	res = &Result{BackupID: plan.BackupID, SourceVM: plan.SourceVM, Dir: plan.Dir, Files: plan.Files, Started: plan.clock.Now().UTC()}
	if err := plan.checkTargets(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(plan.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", plan.Dir, err)
	}

	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				_ = os.Remove(p)
			}
			res = nil
		}
	}()
	ev := plan.events
	st := newStreamer(repo, plan.m, plan.workers)
	defer st.close()
	for i, f := range plan.files {
		target := plan.Files[i].Target
		ev.Status(fmt.Sprintf("restoring %s to %s", fileLabel(f), target))
		if err := writeLocal(ctx, st, f, target, ev.Progress); err != nil {
			return nil, err
		}
		created = append(created, target)
		res.Bytes += f.Size
	}
	res.Finished = plan.clock.Now().UTC()
	return res, nil
}

// writeLocal writes f to a temporary file next to target, syncs it and
// links it into place; the link fails if target appeared meanwhile.
func writeLocal(ctx context.Context, st *streamer, f repository.File, target string, progress func(int64)) (err error) {
	tmp := target + tempSuffix
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if out != nil {
			_ = out.Close()
		}
		_ = os.Remove(tmp)
	}()
	if err := st.writeFile(ctx, f, out, progress); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		out = nil
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	out = nil
	if err := os.Link(tmp, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared during the restore: not overwritten", ErrCollision, target)
		}
		return fmt.Errorf("move %s into place: %w", target, err)
	}
	return nil
}

// selectFiles returns the files whose names match any pattern (all files
// without patterns). Two selected files with one name (disks in different
// folders) cannot share a local folder.
func selectFiles(m *repository.Manifest, patterns []string) ([]repository.File, error) {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: --files %q: %v", ErrBadTarget, p, err)
		}
	}
	var out []repository.File
	seen := map[string]string{}
	for _, f := range m.Files {
		if !matchAny(patterns, f.Name) {
			continue
		}
		if other, ok := seen[f.Name]; ok {
			return nil, fmt.Errorf("%w: two files named %s (%s and %s): select one with --files and restore the other separately", ErrBadTarget, f.Name, other, fileLabel(f))
		}
		seen[f.Name] = fileLabel(f)
		out = append(out, f)
	}
	if len(out) == 0 {
		names := make([]string, 0, len(m.Files))
		for _, f := range m.Files {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("%w: --files %s matches none of the backup's files: %s", ErrBadTarget, strings.Join(patterns, ", "), strings.Join(names, ", "))
	}
	return out, nil
}

func matchAny(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
