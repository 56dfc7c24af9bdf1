package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/keys"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

func newKeysCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys providers | status BACKUP-ID|VM | writer add|list",
		Short: "Show key providers and whether a backup's keys are available on a vCenter",
		Long: `Inspect the encryption keys vTPM VMs depend on, on the vCenter given with
--url or GOVC_URL (usually the one you would restore to).

  keys providers          the vCenter's key providers
  keys status BACKUP|VM   each key of a backup (or of a VM's latest backup)
                          and whether that vCenter can serve it
  keys writer add|list    the writer keys backups are signed with (no vCenter)

EXIT STATUS
  0  success (keys status: every key is available)
  1  failure (repository or vCenter unreachable, unreadable manifest)
  2  usage error (no --url, unknown backup or VM, a name shared by several VMs)
  3  keys status: at least one key is not available on the vCenter`,
		Example: `  vtpm-backup keys providers --url vc-dr.example.com
  vtpm-backup keys status win11-ws01 --url vc-dr.example.com
  vtpm-backup keys status 20260101T020000.000Z-1a2b3c4d --json`,
		DisableAutoGenTag: true,
		Args:              cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknownCommand(cmd, args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newKeysProvidersCommand(g), newKeysStatusCommand(g), newKeysWriterCommand(g))
	return cmd
}

// keysProvidersOptions are the flags of "keys providers".
type keysProvidersOptions struct {
	VCenter vcenterFlags
}

// AddFlags registers the flags of the keys providers command.
func (o *keysProvidersOptions) AddFlags(fs *pflag.FlagSet) {
	o.VCenter.AddFlags(fs)
}

func newKeysProvidersCommand(g *globalOptions) *cobra.Command {
	var opts keysProvidersOptions
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "List the vCenter's key providers",
		Long: `List the key providers registered on the vCenter (--url or GOVC_URL): ID,
type (native = vSphere Native Key Provider, standard = external KMIP KMS,
trust_authority), whether it is the default, whether a Native Key Provider
has been backed up (an NKP never exported to a .p12 dies with its vCenter,
and so do the keys of every VM it encrypted), and its health.

EXIT STATUS
  0  success
  1  the vCenter could not be queried
  2  usage error (no --url)`,
		Example: `  vtpm-backup keys providers --url vc01.example.com
  vtpm-backup keys providers --json | jq 'select(.type=="native" and .nkp_backed_up==false)'`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysProviders(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runKeysProviders(ctx context.Context, opts keysProvidersOptions, g *globalOptions, _ []string) error {
	vc, err := opts.VCenter.connect(ctx, g.lookupEnv)
	if err != nil {
		return err
	}
	defer logout(ctx, vc)
	providers, err := keys.ListProviders(ctx, vc.Vim25())
	if err != nil {
		return fmt.Errorf("key providers of %s: %w", vc.Host(), err)
	}
	p := g.printer()
	for _, kp := range providers {
		p.JSON(keyProviderMessage(kp))
	}
	if len(providers) == 0 {
		p.P("no key providers on %s: encrypted and vTPM VMs cannot be restored there", vc.Host())
		return nil
	}
	t := p.Table("ID", "Type", "Default", "NKP backed up", "Health", "Servers")
	for _, kp := range providers {
		backed := "-"
		switch {
		case kp.Type == keys.ProviderNative && kp.BackedUp == nil:
			backed = "unknown"
		case kp.BackedUp != nil && *kp.BackedUp:
			backed = "yes"
		case kp.BackedUp != nil:
			backed = "NO"
		}
		t.Row(kp.ID, kp.Type, yesNo(kp.Default), backed, orDash(kp.Health), orDash(strings.Join(kp.Servers, ", ")))
	}
	return t.Flush()
}

// keysStatusOptions are the flags of "keys status".
type keysStatusOptions struct {
	Repo    repoFlags
	Trust   trustFlags
	VCenter vcenterFlags
}

// AddFlags registers the flags of the keys status command.
func (o *keysStatusOptions) AddFlags(fs *pflag.FlagSet) {
	o.Repo.AddFlags(fs)
	o.Trust.AddFlags(fs)
	o.VCenter.AddFlags(fs)
}

func newKeysStatusCommand(g *globalOptions) *cobra.Command {
	var opts keysStatusOptions
	cmd := &cobra.Command{
		Use:   "status BACKUP-ID|VM[@latest|@TIME]",
		Short: "Check each key of a backup on the vCenter",
		Long: `Show each key a backup depends on (the VM home key and any disk keys) and
whether the vCenter (--url or GOVC_URL) can serve it: the check restore makes
before writing anything. The backup is chosen exactly as restore chooses it:
a backup ID, or a VM name meaning its latest backup (VM@latest), or VM@TIME
for the latest backup at or before TIME. Unavailable keys come with the remedy.
Backups are authenticated as restore does (--trust-writer, --allow-unsigned).

EXIT STATUS
  0  every key is available (or the backup needs none)
  1  failure (repository or vCenter unreachable, unreadable manifest)
  2  usage error (no --url, unknown backup or VM, a name shared by several VMs)
  3  at least one key is not available: a restore there would be refused; or
     the backup is rejected as unsigned, forged or foreign`,
		Example: `  vtpm-backup keys status win11-ws01 --url vc-dr.example.com
  vtpm-backup keys status 20260101T020000.000Z-1a2b3c4d --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return newUsageError(fmt.Errorf("%s takes one backup ID or VM name, got %d arguments", cmd.CommandPath(), len(args)),
					"see 'vtpm-backup list' for backup IDs")
			}
			return nil
		},
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeysStatus(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.ValidArgsFunction = completeSpec(g, &opts.Repo, &opts.Trust)
	return cmd
}

func runKeysStatus(ctx context.Context, opts keysStatusOptions, g *globalOptions, args []string) error {
	if opts.VCenter.URL == "" {
		return newUsageError(fmt.Errorf("no vCenter given: key status is asked of a vCenter"), "pass --url or set GOVC_URL (the vCenter you would restore to)")
	}
	repo, err := opts.Trust.open(ctx, g, &opts.Repo, "")
	if err != nil {
		return err
	}
	defer repo.Close()
	// The same selection as restore: what is checked here is what a
	// restore of that argument would check.
	m, err := repository.Select(ctx, repo, args[0])
	if err != nil {
		return err
	}
	vc, err := opts.VCenter.connect(ctx, g.lookupEnv)
	if err != nil {
		return err
	}
	defer logout(ctx, vc)

	k := keys.FromManifest(m)
	p := g.printer()
	refs := k.Refs()
	if len(refs) == 0 {
		p.P("backup %s%s of VM %s depends on no keys", m.BackupID, unsignedSuffix(&m.ManifestHeader), m.VM.Name)
		return nil
	}
	statuses, err := keys.Check(ctx, vc.Vim25(), refs, k.Providers)
	if err != nil {
		return fmt.Errorf("keys of backup %s on %s: %w", m.BackupID, vc.Host(), err)
	}
	for _, st := range statuses {
		p.JSON(keyStatusMessage(m, vc.Host(), st))
	}
	p.P("keys of backup %s%s (VM %s) on %s:", m.BackupID, unsignedSuffix(&m.ManifestHeader), m.VM.Name, vc.Host())
	t := p.Table("Key ID", "Use", "Provider", "Type", "Registered", "Available", "Reason")
	for _, st := range statuses {
		t.Row(st.Ref.KeyID, st.Ref.Use, orDash(st.Ref.ProviderID), st.ProviderType, yesNo(st.ProviderRegistered), yesNo(st.Available), orDash(strings.Join(st.Reasons, ", ")))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if err := keys.AvailabilityError(vc.Host(), statuses); err != nil {
		return fmt.Errorf("backup %s of VM %s cannot be restored on %s:\n%w", m.BackupID, m.VM.Name, vc.Host(), err)
	}
	return nil
}
