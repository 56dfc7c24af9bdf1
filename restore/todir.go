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
	"time"

	"github.com/vtpm-backup/vtpm-backup/repository"
)

// DirOptions tune ToDir.
type DirOptions struct {
	// Patterns select files by name (path.Match, e.g. "*.nvram"); none
	// selects every file.
	Patterns []string
	// DryRun runs the checks and returns the plan without writing.
	DryRun bool
	// Workers decode chunks in parallel; default DefaultWorkers.
	Workers int
	// Events receives progress; may be nil.
	Events Events
}

// tempSuffix marks a file being written; it is renamed (linked) into place
// only once complete and verified.
const tempSuffix = ".vtpm-restore-partial"

// ToDir writes the files of backup m selected by opts.Patterns into the
// local folder dir (created when missing), as they were on the datastore:
// for an encrypted VM that is still vSphere's ciphertext, decrypted only
// from the repository's encryption. It needs no vCenter.
//
// It never overwrites: a file that exists already fails the call before
// anything is written (ErrCollision). Each file is written to a temporary
// name, verified (every chunk and the whole-file SHA-256) and then linked
// into place; on failure or cancellation the files this call created are
// removed. The identity is checked on a sample chunk first.
func ToDir(ctx context.Context, repo *repository.Repository, m *repository.Manifest, dir string, opts DirOptions) (res *Result, err error) {
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
	res = &Result{BackupID: m.BackupID, SourceVM: m.VM.Name, Dir: dir, Started: time.Now().UTC()}
	for _, f := range files {
		target := filepath.Join(dir, f.Name)
		res.Files = append(res.Files, PlannedFile{Name: f.Name, Type: f.Type, Size: f.Size, Target: target})
		if _, err := os.Lstat(target); err == nil {
			return nil, fmt.Errorf("%w: %s exists: restore never overwrites; choose an empty --to-dir or move the file away", ErrCollision, target)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("check %s: %w", target, err)
		}
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a folder", ErrBadTarget, dir)
	}
	ev.Status("checking the identity")
	if err := checkIdentity(ctx, repo, m); err != nil {
		return nil, err
	}
	if opts.DryRun {
		res.Finished = time.Now().UTC()
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
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
	st := newStreamer(repo, m, opts.Workers)
	defer st.close()
	for i, f := range files {
		target := res.Files[i].Target
		ev.Status(fmt.Sprintf("restoring %s to %s", fileLabel(f), target))
		if err := writeLocal(ctx, st, f, target, ev.Progress); err != nil {
			return nil, err
		}
		created = append(created, target)
		res.Bytes += f.Size
	}
	res.Finished = time.Now().UTC()
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
