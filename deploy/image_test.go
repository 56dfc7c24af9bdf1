package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/deploy"
)

// ociBlob reads a blob of an OCI layout archive by digest.
func ociBlob(t *testing.T, archive map[string][]byte, digest string) []byte {
	t.Helper()
	algo, hex, _ := strings.Cut(digest, ":")
	b, ok := archive["blobs/"+algo+"/"+hex]
	if !ok {
		t.Fatalf("blob %s missing from the archive", digest)
	}
	return b
}

// readArchive reads every file of a tar archive into memory.
func readArchive(t *testing.T, file string) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if out[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// unpackLayer extracts a gzip-compressed layer into dir, refusing paths
// that leave it.
func unpackLayer(t *testing.T, layer []byte, dir string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := path.Clean(h.Name)
		if strings.HasPrefix(name, "../") || path.IsAbs(name) {
			t.Fatalf("layer entry %q leaves the root", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(target, os.FileMode(h.Mode)&os.ModePerm|modeBits(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("layer entry %q of type %c", h.Name, h.Typeflag)
		}
	}
}

func modeBits(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}

// recipeImage returns the image every CronJob of the Kubernetes recipe
// runs, and checks that they all run the same one, as a non-root user on
// a read-only root file system.
func recipeImage(t *testing.T) (image string, uid int64) {
	t.Helper()
	ms, err := deploy.Manifests("kubernetes/cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Kind != "CronJob" {
			continue
		}
		pod := m.Spec.JobTemplate.Spec.Template.Spec
		sc := pod.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("CronJob %s: want runAsNonRoot and a non-zero runAsUser", m.Metadata.Name)
			continue
		}
		for _, c := range pod.Containers {
			csc := c.SecurityContext
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Errorf("CronJob %s: container %s: want readOnlyRootFilesystem and no privilege escalation", m.Metadata.Name, c.Name)
			}
			if image != "" && c.Image != image {
				t.Errorf("CronJob %s runs %s, another %s", m.Metadata.Name, c.Image, image)
			}
			image, uid = c.Image, *sc.RunAsUser
		}
	}
	if image == "" {
		t.Fatal("no CronJob image in the recipe")
	}
	return image, uid
}

// TestImage builds the container image with "make image", as from a clean
// clone, under the name the Kubernetes recipe runs, unpacks it and runs
// the binary from it: "version" as the image's non-root user with the
// image as its root (chroot, when the test runs as root), and checks with
// file(1) that the binary is statically linked.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image (about a minute): not with -short")
	}
	for _, tool := range []string{"make", "git", "file"} {
		lookTool(t, tool, tool)
	}
	image, uid := recipeImage(t)
	name, tag, ok := strings.Cut(image, ":")
	if !ok || path.Base(name) != "vtpm-backup" {
		t.Fatalf("the recipe runs %q: want REGISTRY/vtpm-backup:VERSION, the name make image gives with IMAGE=REGISTRY/vtpm-backup", image)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	cmd := exec.CommandContext(t.Context(), "make", "-C", "..", "image", "IMAGE="+name, "VERSION="+tag, "IMAGE_TAR="+archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}

	files := readArchive(t, archive)
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v: %s", err, files["index.json"])
	}
	if ref := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != image {
		t.Errorf("image named %q, the recipe runs %q", ref, image)
	}
	var manifest struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(ociBlob(t, files, index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	var config struct {
		OS     string `json:"os"`
		Config struct {
			User       string   `json:"User"`
			Entrypoint []string `json:"Entrypoint"`
		} `json:"config"`
	}
	if err := json.Unmarshal(ociBlob(t, files, manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	if config.OS != "linux" || config.Config.User != fmt.Sprintf("%d:%d", uid, uid) || len(config.Config.Entrypoint) != 1 {
		t.Fatalf("image config: %+v; want linux, user %d:%d (the recipe's runAsUser), an entrypoint", config, uid, uid)
	}

	root := filepath.Join(dir, "rootfs")
	for _, l := range manifest.Layers {
		unpackLayer(t, ociBlob(t, files, l.Digest), root)
	}
	bin := filepath.Join(root, filepath.FromSlash(config.Config.Entrypoint[0]))
	for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "tmp"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("image lacks /%s: %v", f, err)
		}
	}
	if passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(passwd), fmt.Sprintf(":%d:%d:", uid, uid)) {
		t.Errorf("/etc/passwd has no user %d:\n%s", uid, passwd)
	}
	out, err := exec.CommandContext(t.Context(), "file", "-b", bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "statically linked") {
		t.Errorf("file %s: %v: %s; want statically linked", config.Config.Entrypoint[0], err, out)
	}

	run := exec.CommandContext(t.Context(), bin, "version")
	if os.Geteuid() == 0 {
		// Inside the image, as its user, with nothing of this machine.
		run = exec.CommandContext(t.Context(), config.Config.Entrypoint[0], "version")
		run.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		run.Dir = "/"
		run.Env = []string{"HOME=/tmp"}
	}
	out, err = run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), tag) {
		t.Fatalf("version from the image: %v\n%s", err, out)
	}
	t.Logf("version from the image (chroot %v): %s", os.Geteuid() == 0, strings.TrimSpace(string(out)))
}
