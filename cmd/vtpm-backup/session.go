package main

import (
	"context"
	"fmt"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/vsphere"
)

// openRepository opens the repository at --repo. The caller closes it
// (repo.Close()).
func (g *globalOptions) openRepository(ctx context.Context) (*repository.Repository, error) {
	be, err := g.openBackend(ctx)
	if err != nil {
		return nil, err
	}
	repo, err := repository.Open(ctx, be)
	if err != nil {
		_ = be.Close()
		return nil, err
	}
	return repo, nil
}

// loadIdentity gives repo the private key from --identity or
// VTPM_BACKUP_IDENTITY, for commands that decrypt.
func (g *globalOptions) loadIdentity(repo *repository.Repository, path string) error {
	if path == "" {
		if v, ok := g.lookupEnv("VTPM_BACKUP_IDENTITY"); ok {
			path = v
		}
	}
	ids, err := repository.LoadIdentityFile(path)
	if err != nil {
		return newUsageError(err, "pass --identity FILE (the age identity created at init) or set VTPM_BACKUP_IDENTITY")
	}
	repo.SetIdentities(ids)
	return nil
}

// connectVCenter logs in to vCenter with the --url/--username/... flags,
// which already fell back to GOVC_*. The caller logs out.
func (g *globalOptions) connectVCenter(ctx context.Context) (*vsphere.Client, error) {
	if g.VCenter.URL == "" {
		return nil, newUsageError(fmt.Errorf("no vCenter given"), "pass --url https://vcenter.example.com/sdk or set GOVC_URL (with GOVC_USERNAME and GOVC_PASSWORD or --password-file)")
	}
	password, err := g.vcenterPassword()
	if err != nil {
		return nil, err
	}
	opts := vsphere.ConnectOptions{
		URL:         g.VCenter.URL,
		Username:    g.VCenter.Username,
		Password:    password,
		Insecure:    g.VCenter.Insecure,
		CACertsFile: g.VCenter.CACerts,
		Datacenter:  g.VCenter.Datacenter,
	}
	c, err := vsphere.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// logout ends a vCenter session even when ctx is cancelled (Ctrl-C).
func logout(ctx context.Context, c *vsphere.Client) {
	_ = c.Logout(context.WithoutCancel(ctx))
}
