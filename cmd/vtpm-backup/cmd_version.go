package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtpm-backup/vtpm-backup/internal/ui"
)

// version and commit are set at link time by the Makefile:
//
//	go build -ldflags "-X main.version=$(git describe) -X main.commit=$(git rev-parse HEAD)"
//
// Empty, they come from the build info (go install ...@vX.Y.Z, VCS stamps).
var (
	version string
	commit  string
)

// versionOptions are the flags of "vtpm-backup version".
type versionOptions struct {
	Short bool
}

// AddFlags registers the flags of the version command.
func (o *versionOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Short, "short", false, "print the version only")
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	var opts versionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Long: `Print the version of vtpm-backup, the commit it was built from and the Go
version it was built with. Include it in bug reports; backups record it in
their manifests.

EXIT STATUS
  0 on success, 2 on a usage error.`,
		Example: `  vtpm-backup version
  vtpm-backup version --short
  vtpm-backup version --json`,
		Args:              noArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(cmd.Context(), opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runVersion(_ context.Context, opts versionOptions, g *globalOptions, _ []string) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	v := buildVersion(version, commit, bi)
	p := g.printer()
	p.JSON(v)
	switch {
	case opts.Short:
		p.P("%s", v.Version)
	default:
		p.P("%s", formatVersion(v))
	}
	return nil
}

// buildVersion combines the link-time values (preferred) with the build
// info of the binary; bi may be nil.
func buildVersion(ldVersion, ldCommit string, bi *debug.BuildInfo) ui.VersionMessage {
	v := ui.VersionMessage{
		Version:   ldVersion,
		Commit:    ldCommit,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				v.CommitTime = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	return v
}

// formatVersion is the human line, e.g.
// "vtpm-backup v0.1.0 (commit 1a2b3c4d5e6f, modified) built with go1.26.0 for linux/amd64".
func formatVersion(v ui.VersionMessage) string {
	s := "vtpm-backup " + v.Version
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (commit " + c
		if v.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + fmt.Sprintf(" built with %s for %s/%s", v.GoVersion, v.OS, v.Arch)
}

// toolVersion is the version string backups record in their manifests.
func toolVersion() string {
	bi, _ := debug.ReadBuildInfo()
	v := buildVersion(version, commit, bi)
	if v.Commit != "" && len(v.Commit) >= 12 {
		return v.Version + " (" + v.Commit[:12] + ")"
	}
	return v.Version
}
