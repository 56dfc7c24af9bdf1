package deploy

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed config.example.yaml cron systemd kubernetes prometheus grafana
var files embed.FS

// Files returns the recipes, by their path below deploy/.
func Files() fs.FS { return files }

// Invocation is one vtpm-backup command line in a recipe: the arguments
// after the program name, where shell variables and systemd specifiers are
// left as written.
type Invocation struct {
	File string // path below deploy/
	Line int    // 0 in YAML manifests
	Args []string
}

// Invocations returns every vtpm-backup command line of the cron, systemd
// and Kubernetes recipes, so that tests can check them against the command
// tree.
func Invocations() ([]Invocation, error) {
	var out []Invocation
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		var found []Invocation
		switch {
		case strings.HasPrefix(p, "cron/"), strings.HasPrefix(p, "systemd/"):
			found = shellInvocations(p, string(data), strings.HasPrefix(p, "systemd/"))
		case strings.HasPrefix(p, "kubernetes/"):
			found, err = manifestInvocations(p, data)
		}
		out = append(out, found...)
		return err
	})
	return out, err
}

// shellInvocations finds vtpm-backup in the command lines of a cron file or
// the Exec lines of a systemd unit (unit). A command line ends at a shell
// operator or redirection.
func shellInvocations(file, text string, unit bool) []Invocation {
	var out []Invocation
	sc := bufio.NewScanner(strings.NewReader(text))
	line, start, joined := 0, 0, ""
	for sc.Scan() {
		line++
		s := sc.Text()
		if joined == "" {
			start = line
		}
		if rest, ok := strings.CutSuffix(s, "\\"); ok {
			joined += rest + " "
			continue
		}
		s, joined = joined+s, ""
		if strings.HasPrefix(strings.TrimSpace(s), "#") {
			continue
		}
		k, v, isSetting := strings.Cut(s, "=")
		isSetting = isSetting && !strings.ContainsAny(k, " \t")
		switch {
		case unit && isSetting && strings.HasPrefix(k, "Exec"):
			s = strings.TrimLeft(v, "-@:+!")
		case isSetting: // other unit settings, cron environment lines
			continue
		}
		toks := strings.Fields(s)
		for i, t := range toks {
			// A word with "=" is an assignment or an argument
			// (IMAGE=registry/vtpm-backup), never the program.
			if strings.Contains(t, "=") || path.Base(t) != "vtpm-backup" {
				continue
			}
			var args []string
			for _, a := range toks[i+1:] {
				if isShellOperator(a) {
					break
				}
				args = append(args, a)
			}
			out = append(out, Invocation{File: file, Line: start, Args: args})
			break
		}
	}
	return out
}

// isShellOperator reports whether tok ends a simple command.
func isShellOperator(tok string) bool {
	switch tok {
	case ";", "&&", "||", "|", "&":
		return true
	}
	return strings.HasPrefix(tok, ">") || strings.HasPrefix(tok, "<") ||
		strings.HasPrefix(tok, "2>") || strings.HasPrefix(tok, "&>")
}

// Manifest is the part of a Kubernetes object the recipes' tests read.
type Manifest struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   ObjectMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       CronJobSpec       `yaml:"spec"`
}

// ObjectMeta is the metadata of a Kubernetes object.
type ObjectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

// CronJobSpec is the spec of a CronJob.
type CronJobSpec struct {
	Schedule          string `yaml:"schedule"`
	ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
	JobTemplate       struct {
		Spec struct {
			Template struct {
				Spec PodSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	} `yaml:"jobTemplate"`
}

// PodSpec is the pod template of a CronJob.
type PodSpec struct {
	RestartPolicy   string              `yaml:"restartPolicy"`
	SecurityContext *PodSecurityContext `yaml:"securityContext"`
	Containers      []Container         `yaml:"containers"`
	Volumes         []Volume            `yaml:"volumes"`
}

// PodSecurityContext is the security context of a pod.
type PodSecurityContext struct {
	RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
	RunAsUser    *int64 `yaml:"runAsUser"`
	RunAsGroup   *int64 `yaml:"runAsGroup"`
}

// SecurityContext is the security context of a container.
type SecurityContext struct {
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
}

// Container is a container of a pod.
type Container struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	SecurityContext *SecurityContext `yaml:"securityContext"`
	Command         []string         `yaml:"command"`
	Args            []string         `yaml:"args"`
	Env             []EnvVar         `yaml:"env"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// EnvVar is an environment variable of a container.
type EnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

// Volume is a volume of a pod.
type Volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir map[string]any `yaml:"emptyDir"`
}

// Manifests decodes every document of the Kubernetes manifest file.
func Manifests(file string) ([]Manifest, error) {
	data, err := files.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return decodeManifests(file, data)
}

func decodeManifests(file string, data []byte) ([]Manifest, error) {
	var out []Manifest
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for {
		var m Manifest
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("%s: document %d: %w", file, len(out)+1, err)
		}
		out = append(out, m)
	}
}

// manifestInvocations returns the containers of the manifests that run
// vtpm-backup.
func manifestInvocations(file string, data []byte) ([]Invocation, error) {
	ms, err := decodeManifests(file, data)
	if err != nil {
		return nil, err
	}
	var out []Invocation
	for _, m := range ms {
		for _, c := range m.Spec.JobTemplate.Spec.Template.Spec.Containers {
			if len(c.Command) == 0 || path.Base(c.Command[0]) != "vtpm-backup" {
				continue
			}
			args := append(append([]string(nil), c.Command[1:]...), c.Args...)
			out = append(out, Invocation{File: file + ": " + m.Kind + " " + m.Metadata.Name, Args: args})
		}
	}
	return out, nil
}

// Configs returns the vtpm-backup config files of the recipes: the example
// file and the config.yaml of every ConfigMap, by where they come from.
func Configs() (map[string][]byte, error) {
	out := map[string][]byte{}
	data, err := files.ReadFile("config.example.yaml")
	if err != nil {
		return nil, err
	}
	out["config.example.yaml"] = data
	ms, err := Manifests("kubernetes/cronjob.yaml")
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if c, ok := m.Data["config.yaml"]; ok && m.Kind == "ConfigMap" {
			out["kubernetes/cronjob.yaml: ConfigMap "+m.Metadata.Name] = []byte(c)
		}
	}
	return out, nil
}

// CommandLines finds the vtpm-backup command lines of a shell text, such as
// the code blocks of README.md, the way Invocations does for the recipes,
// so documentation is held to the real flags too.
func CommandLines(file, text string) []Invocation { return shellInvocations(file, text, false) }
