package repository

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Selection errors, checked with errors.Is. They are all bad input: the
// user named a backup that is not there, or not uniquely.
var (
	// ErrBackupNotFound: no backup matches the ID or VM[@TIME] given.
	ErrBackupNotFound = errors.New("backup not found")
	// ErrAmbiguous: a VM name matches backups of several VMs (see
	// AmbiguousError).
	ErrAmbiguous = errors.New("ambiguous backup selection")
	// ErrBadSpec: the selection cannot be parsed (empty, no VM before @,
	// an unreadable time).
	ErrBadSpec = errors.New("invalid backup selection")
)

// AmbiguousError says that a VM name matches backups of more than one VM
// (same name, different VMs over time or on different vCenters). The user
// picks one with its inventory path or a backup ID.
type AmbiguousError struct {
	Spec string
	// Candidates describe each VM: inventory path, instance UUID, vCenter
	// and its latest backup ID.
	Candidates []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q matches backups of %d different VMs: restore by inventory path (e.g. %q) or by backup ID:\n  %s",
		e.Spec, len(e.Candidates), "/DC0/vm/NAME@latest", strings.Join(e.Candidates, "\n  "))
}

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

// maxListed bounds how many candidates an error lists.
const maxListed = 20

// Spec is a parsed backup selection: a backup ID, or a VM (name or
// inventory path) with an optional point in time.
type Spec struct {
	// BackupID is set when the selection is a backup ID.
	BackupID string
	// VM is a VM name or inventory path.
	VM string
	// Before selects the latest backup at or before this time; zero means
	// the latest backup.
	Before time.Time
}

// timeLayouts are accepted after "VM@". Times without a zone are UTC, like
// backup IDs; a bare date means the end of that day ("the backup of May 1").
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"20060102T150405Z",
}

// ParseSpec parses BACKUP-ID, VM, VM@latest or VM@TIME (RFC 3339, or
// "2006-01-02[T15:04[:05]]" in UTC; a date alone means the end of that day).
func ParseSpec(s string) (Spec, error) {
	if s == "" {
		return Spec{}, fmt.Errorf("%w: empty backup selection: give a backup ID or VM[@latest|@TIME]", ErrBadSpec)
	}
	if !strings.Contains(s, "@") {
		if _, err := BackupTime(s); err == nil {
			return Spec{BackupID: s}, nil
		}
		return Spec{VM: s}, nil
	}
	i := strings.LastIndexByte(s, '@')
	vm, when := s[:i], s[i+1:]
	if vm == "" {
		return Spec{}, fmt.Errorf("%w: %q: no VM name before @", ErrBadSpec, s)
	}
	if when == "" || strings.EqualFold(when, "latest") {
		return Spec{VM: vm}, nil
	}
	if t, err := time.Parse("2006-01-02", when); err == nil {
		return Spec{VM: vm, Before: t.Add(24*time.Hour - time.Nanosecond)}, nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, when); err == nil {
			return Spec{VM: vm, Before: t.UTC()}, nil
		}
	}
	return Spec{}, fmt.Errorf("%w: %q: cannot read the time %q: use latest, 2006-01-02, 2006-01-02T15:04 (UTC) or RFC 3339 such as 2006-01-02T15:04:05+02:00", ErrBadSpec, s, when)
}

// Select returns the manifest (read and validated) of the backup named by
// spec: a backup ID, or VM, VM@latest or VM@TIME, where VM is the VM's name
// or inventory path at backup time. An unknown ID or VM wraps
// ErrBackupNotFound and lists what the repository holds; a name shared by
// several VMs returns *AmbiguousError.
func Select(ctx context.Context, repo *Repository, spec string) (*Manifest, error) {
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if sp.BackupID != "" {
		m, err := repo.ReadManifest(ctx, sp.BackupID)
		if errors.Is(err, ErrManifestNotFound) {
			return nil, fmt.Errorf("%w: no backup %s in %s: run 'vtpm-backup list' for the backup IDs", ErrBackupNotFound, sp.BackupID, repo.Location())
		}
		return m, err
	}
	cat, err := LoadCatalog(ctx, repo)
	if err != nil {
		return nil, err
	}
	h, err := cat.selectVM(sp, spec, repo.Location())
	if err != nil {
		return nil, err
	}
	// The catalog holds headers; read (and validate) the whole manifest.
	return repo.ReadManifest(ctx, h.BackupID)
}

// selectVM picks the header of the backup a VM[@TIME] spec names; where
// is the repository's location, for messages.
func (c *Catalog) selectVM(sp Spec, spec, where string) (*ManifestHeader, error) {
	var (
		matches    []*ManifestHeader
		allNames   = map[string]bool{}
		unreadable int
	)
	for _, b := range c.All() {
		if b.Header == nil {
			unreadable++
			continue
		}
		m := b.Header
		allNames[m.VM.Name] = true
		if m.VM.Name == sp.VM || m.VM.InventoryPath == sp.VM {
			matches = append(matches, m)
		}
	}
	if len(matches) == 0 {
		if err := c.rejectedOnly(sp.VM, where); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: no backup of a VM named %q in %s%s; VMs with backups: %s",
			ErrBackupNotFound, sp.VM, where, unreadableNote(unreadable), listNames(allNames))
	}
	if err := ambiguity(spec, matches); err != nil {
		return nil, err
	}
	m := latest(matches, sp.Before)
	if m == nil {
		oldest := matches[0]
		for _, c := range matches {
			if c.BackupID < oldest.BackupID {
				oldest = c
			}
		}
		return nil, fmt.Errorf("%w: VM %q has no backup at or before %s; its oldest is %s",
			ErrBackupNotFound, sp.VM, sp.Before.UTC().Format(time.RFC3339), oldest.BackupID)
	}
	// A newer backup of the VM whose manifest is damaged would silently
	// turn "latest" into an older state: make the user choose.
	for _, b := range c.Backups(m.VM.Name) {
		if b.Header == nil && b.ID > m.BackupID && (sp.Before.IsZero() || !b.Time.After(sp.Before)) {
			return nil, fmt.Errorf("%w: the newest backup %s of VM %s cannot be read (%v); to restore the one before it, name it: vtpm-backup restore %s",
				ErrCorruptManifest, b.ID, m.VM.Name, b.Err, m.BackupID)
		}
	}
	return m, nil
}

// ambiguity returns an *AmbiguousError when the matches belong to more
// than one VM. One VM is one instance UUID (a VM moved between vCenters
// keeps it); VMs recorded without one are told apart by inventory path.
func ambiguity(spec string, matches []*ManifestHeader) error {
	byVM := map[string][]*ManifestHeader{}
	for _, m := range matches {
		key := "uuid:" + m.VM.InstanceUUID
		if m.VM.InstanceUUID == "" {
			key = "path:" + m.VM.InventoryPath
		}
		byVM[key] = append(byVM[key], m)
	}
	if len(byVM) < 2 {
		return nil
	}
	amb := &AmbiguousError{Spec: spec}
	for _, ms := range byVM {
		last := latest(ms, time.Time{})
		amb.Candidates = append(amb.Candidates, fmt.Sprintf("%s (instance UUID %s, vCenter %s): latest backup %s",
			last.VM.InventoryPath, last.VM.InstanceUUID, last.VCenter.Host, last.BackupID))
	}
	sort.Strings(amb.Candidates)
	return amb
}

// latest returns the newest backup taken at or before t (any when t is
// zero), by the time in its backup ID; nil when there is none.
func latest(ms []*ManifestHeader, t time.Time) *ManifestHeader {
	var best *ManifestHeader
	for _, m := range ms {
		bt, err := BackupTime(m.BackupID)
		if err != nil || (!t.IsZero() && bt.After(t)) {
			continue
		}
		if best == nil || m.BackupID > best.BackupID {
			best = m
		}
	}
	return best
}

func listNames(names map[string]bool) string {
	if len(names) == 0 {
		return "none"
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	if len(list) > maxListed {
		return strings.Join(list[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(list)-maxListed)
	}
	return strings.Join(list, ", ")
}

func unreadableNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d manifest(s) could not be read: run 'vtpm-backup audit')", n)
}

// rejectedOnly explains a VM whose backups were all rejected (a repository
// older than signed backups, or a planted one): the error wraps the
// newest rejection, so it is ErrRejected and carries its remedy.
func (c *Catalog) rejectedOnly(vm, where string) error {
	var claimed []Backup
	for _, b := range c.rejected {
		if b.VM == vm {
			claimed = append(claimed, b)
		}
	}
	if len(claimed) == 0 {
		return nil
	}
	return fmt.Errorf("no authenticated backup of VM %q in %s: %d backup(s) claiming it were rejected, the newest: %w", vm, where, len(claimed), claimed[0].Err)
}
