// Command mkimage builds the vtpm-backup container image without Docker
// and without a network: an OCI image layout, as one tar file
// (oci-archive), holding the static binary, the CA certificates, a
// non-root user and the entrypoint, built with go-containerregistry
// (pinned in tools/go.mod). "make image" runs it.
//
//	mkimage -binary BIN -ca-certs FILE -ref NAME:TAG -out IMAGE.tar
//
// The image is reproducible: file times and the creation time come from
// SOURCE_DATE_EPOCH (the Makefile sets the last commit's time).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: the conventional "nonroot" IDs of distroless images,
// which the Kubernetes recipe's runAsUser names.
const (
	uid      = 65532
	userName = "vtpm-backup"
	binPath  = "usr/local/bin/vtpm-backup"
	caPath   = "etc/ssl/certs/ca-certificates.crt"
)

func main() {
	bin := flag.String("binary", "", "the static vtpm-backup `binary`")
	ca := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM `file` of CA certificates for the image")
	ref := flag.String("ref", "", "image `name:tag`, recorded in the layout's index")
	out := flag.String("out", "", "the OCI archive to write")
	flag.Parse()
	if *bin == "" || *ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkimage -binary BIN -ca-certs FILE -ref NAME:TAG -out IMAGE.tar")
		os.Exit(2)
	}
	if err := build(*bin, *ca, *ref, *out, sourceDate()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// sourceDate is SOURCE_DATE_EPOCH, else the Unix epoch: never the wall
// clock, so that the same inputs give the same image.
func sourceDate() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

func build(bin, ca, ref, out string, when time.Time) error {
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	certs, err := os.ReadFile(ca)
	if err != nil {
		return fmt.Errorf("CA certificates: %w (install Debian's ca-certificates, or pass -ca-certs)", err)
	}
	rootfs, err := rootFS(binary, certs, when)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: when}, CreatedBy: "mkimage (make image)", Comment: "vtpm-backup, CA certificates, user " + userName,
	}})
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: when}
	cfg.OS, cfg.Architecture = "linux", goarch()
	cfg.Config.Entrypoint = []string{"/" + binPath}
	cfg.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.Config.WorkingDir = "/tmp"
	cfg.Config.Env = []string{"PATH=/usr/local/bin", "HOME=/tmp", "SSL_CERT_FILE=/" + caPath}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":  "vtpm-backup",
		"org.opencontainers.image.source": "https://github.com/vtpm-backup/vtpm-backup",
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	return writeArchive(img, ref, out)
}

// rootFS is the image's only layer: the directories, the user and group
// files, the CA bundle and the binary, owned by root and read-only but
// for /tmp.
func rootFS(binary, certs []byte, when time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: when, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: when, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:vtpm-backup:/tmp:/sbin/nologin\n", userName, uid, uid)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	steps := []func() error{
		func() error { return dir("etc", 0o755) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755) },
		func() error { return dir("etc/ssl/certs", 0o755) },
		func() error { return file(caPath, 0o644, certs) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return dir("usr", 0o755) },
		func() error { return dir("usr/local", 0o755) },
		func() error { return dir("usr/local/bin", 0o755) },
		func() error { return file(binPath, 0o755, binary) },
		tw.Close,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// writeArchive writes img as an OCI image layout into a tar file, with
// ref as its name (org.opencontainers.image.ref.name, which podman,
// skopeo and docker load read).
func writeArchive(img v1.Image, ref, out string) error {
	tmp, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref,
	})); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".mkimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := tarDir(f, tmp); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), out)
}

// tarDir writes the files below root into w, in lexical order, with
// fixed owners and times so that the archive is reproducible.
func tarDir(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
		}
		if !d.Type().IsRegular() {
			return errors.New("unexpected file in the layout: " + rel)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
