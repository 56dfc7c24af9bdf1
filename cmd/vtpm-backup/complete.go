package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtpm-backup/vtpm-backup/backup"
	"github.com/vtpm-backup/vtpm-backup/repository"
)

// completeTimeout bounds a completion: the shell waits for it.
const completeTimeout = 10 * time.Second

// noFiles: arguments are never file names.
const noFiles = cobra.ShellCompDirectiveNoFileComp

// completeFromRepo completes arguments from the command's repository, read
// with the command's own flags, environment and config file and its
// writer-key trust, so that rejected backups are never offered. offer
// picks the candidates from the catalog. Whatever fails yields no
// candidates, silently: a completion must not print errors into the
// user's command line.
func completeFromRepo(g *globalOptions, rf *repoFlags, tf *trustFlags, offer func(cat *repository.Catalog, args []string, toComplete string) []repository.Completion) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		quiet := *g
		quiet.stdout, quiet.stderr = io.Discard, io.Discard
		if err := quiet.prepare(cmd.Flags()); err != nil || rf.URL == "" {
			return nil, noFiles
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		repo, err := tf.open(ctx, &quiet, rf, "")
		if err != nil {
			return nil, noFiles
		}
		defer repo.Close()
		cat, err := repository.LoadCatalog(ctx, repo)
		if err != nil {
			return nil, noFiles
		}
		return completions(offer(cat, args, toComplete)), noFiles
	}
}

// completeSpec completes the one BACKUP-ID|VM[@latest|@TIME] argument of
// restore and keys status.
func completeSpec(g *globalOptions, rf *repoFlags, tf *trustFlags) cobra.CompletionFunc {
	return completeFromRepo(g, rf, tf, func(cat *repository.Catalog, args []string, toComplete string) []repository.Completion {
		if len(args) > 0 {
			return nil
		}
		return cat.CompleteSpecs(toComplete)
	})
}

// completeRepoVMs completes the VM... arguments of list and audit with the
// VMs that have backups.
func completeRepoVMs(g *globalOptions, rf *repoFlags, tf *trustFlags) cobra.CompletionFunc {
	return completeFromRepo(g, rf, tf, func(cat *repository.Catalog, args []string, toComplete string) []repository.Completion {
		return cat.CompleteVMs(toComplete, args...)
	})
}

// completeVCenterVMs completes the VM... arguments of backup with the VMs
// of the vCenter the command would connect to; without a vCenter in the
// flags, environment or config file it offers nothing and asks nothing.
func completeVCenterVMs(g *globalOptions, vf *vcenterFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		quiet := *g
		quiet.stdout, quiet.stderr = io.Discard, io.Discard
		if err := quiet.prepare(cmd.Flags()); err != nil || vf.URL == "" {
			return nil, noFiles
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		c, err := vf.connect(ctx, g.lookupEnv)
		if err != nil {
			return nil, noFiles
		}
		defer logout(ctx, c)
		vms, err := backup.CompleteVMs(ctx, c, toComplete, args...)
		if err != nil {
			return nil, noFiles
		}
		return completions(vms), noFiles
	}
}

// completions turns candidates into cobra's "value\tdescription" lines.
func completions(cs []repository.Completion) []cobra.Completion {
	out := make([]cobra.Completion, 0, len(cs))
	for _, c := range cs {
		out = append(out, cobra.CompletionWithDesc(c.Value, c.Description))
	}
	return out
}
