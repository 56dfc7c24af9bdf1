package repository

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Backup is one backup as the catalog knows it: its manifest's header, or
// why the header could not be read.
type Backup struct {
	ID string
	// Time is when the backup was taken, from its ID (so that it is known
	// even when the manifest is unreadable).
	Time time.Time
	// VM is the VM's name; "" when the manifest is so damaged that not
	// even the name could be read.
	VM string
	// Header is the manifest's header (nil when it could not be decoded).
	// The chunk lists are not loaded: Repository.ReadManifest reads them
	// for the backups a command actually works on.
	Header *ManifestHeader
	// Err says why the manifest is unusable: it wraps ErrCorruptManifest,
	// or is a *RejectedError (ErrRejected) for a manifest that failed
	// authentication, whose VM is only what the manifest claims.
	Err error
}

// Unsigned reports a backup without signature that was accepted because
// the reader allows unsigned backups: outputs name it.
func (b Backup) Unsigned() bool { return b.Header != nil && !b.Header.Auth.Signed }

// Rejection returns why the backup was rejected, nil when it was not.
func (b Backup) Rejection() *RejectedError {
	var re *RejectedError
	if errors.As(b.Err, &re) {
		return re
	}
	return nil
}

// Catalog is every backup of a repository, read once, grouped by VM name
// (the way users name VMs on the command line: a VM restored under its old
// name continues its history). Commands that need another grouping (by
// instance UUID, by inventory path) walk All. It holds manifest headers
// only, a few kilobytes per backup, however large the VMs.
type Catalog struct {
	byVM map[string][]Backup
	byID map[string]Backup
	// Unattributed are backups whose manifest is too damaged to tell
	// which VM they belong to.
	Unattributed []Backup
	// rejected are backups that failed authentication. They belong to no
	// VM (whatever they claim), so nothing that selects a VM's backups
	// (latest, a time, retention) ever sees them.
	rejected []Backup
}

// LoadCatalog reads and authenticates the header of every manifest of repo.
// A corrupt manifest does not fail the load: it is kept with its error
// (attributed to its VM when its name can still be read) so that audits
// report it; a rejected one is kept apart (Rejected). Other read errors
// (network, permissions) do fail it: an audit must not pass because it
// could not look.
func LoadCatalog(ctx context.Context, repo *Repository) (*Catalog, error) {
	ids, err := repo.ListBackupIDs(ctx)
	if err != nil {
		return nil, err
	}
	backups := make([]Backup, len(ids))
	parallel(len(ids), manifestReaders, func(i int) {
		h, err := repo.ReadManifestHeader(ctx, ids[i])
		backups[i] = Backup{ID: ids[i], Header: h, Err: err}
	})
	c := &Catalog{byVM: map[string][]Backup{}, byID: map[string]Backup{}}
	for _, b := range backups {
		if t, err := BackupTime(b.ID); err == nil {
			b.Time = t
		}
		switch {
		case errors.Is(b.Err, ErrManifestNotFound):
			continue // deleted (pruned) since the listing
		case errors.Is(b.Err, ErrRejected):
			b.Header, b.VM = nil, b.Rejection().ClaimedVM
			c.rejected = append(c.rejected, b)
			continue
		case b.Err != nil && !errors.Is(b.Err, ErrCorruptManifest):
			return nil, fmt.Errorf("read backup catalog of %s: %w", repo.Location(), b.Err)
		}
		if b.Header != nil {
			b.VM = b.Header.VM.Name
		}
		if b.Err != nil {
			b.Header = nil // only its VM name is trusted
		}
		c.byID[b.ID] = b
		if b.VM == "" {
			c.Unattributed = append(c.Unattributed, b)
			continue
		}
		c.byVM[b.VM] = append(c.byVM[b.VM], b)
	}
	for _, bs := range c.byVM {
		sort.Slice(bs, func(i, j int) bool { return bs[i].ID > bs[j].ID })
	}
	sort.Slice(c.rejected, func(i, j int) bool { return c.rejected[i].ID > c.rejected[j].ID })
	return c, nil
}

// Rejected returns the backups that failed authentication, newest first.
// Their VM field is what the manifest claims.
func (c *Catalog) Rejected() []Backup { return c.rejected }

// VMs returns the names of the VMs with at least one backup, sorted.
func (c *Catalog) VMs() []string {
	names := make([]string, 0, len(c.byVM))
	for n := range c.byVM {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Backups returns the backups of a VM, newest first.
func (c *Catalog) Backups(vm string) []Backup { return c.byVM[vm] }

// Latest returns the newest backup of a VM, readable or not.
func (c *Catalog) Latest(vm string) (Backup, bool) {
	bs := c.byVM[vm]
	if len(bs) == 0 {
		return Backup{}, false
	}
	return bs[0], true
}

// All returns every backup, newest first, unreadable ones included and
// rejected ones not (see Rejected).
func (c *Catalog) All() []Backup {
	out := make([]Backup, 0, len(c.byID))
	for _, b := range c.byID {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out
}

// Len returns the number of backups, unreadable ones included and
// rejected ones not.
func (c *Catalog) Len() int { return len(c.byID) }
