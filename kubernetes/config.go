package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/internal/isoduration"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// PullPolicy says when the kubelet pulls the task's image: Kestra's names
// for Kubernetes' IfNotPresent, Always and Never.
type PullPolicy string

const (
	// PullIfNotPresent pulls the image only when the node does not have it.
	// It is the default (Kubernetes' own default for an image with a tag
	// other than latest).
	PullIfNotPresent PullPolicy = "IF_NOT_PRESENT"
	// PullAlways pulls the image before every run.
	PullAlways PullPolicy = "ALWAYS"
	// PullNever never pulls: an image the node does not have fails the run
	// with [runner.ErrImageNotFound].
	PullNever PullPolicy = "NEVER"
)

// LogStreams says how the runner reads the script's two output streams.
type LogStreams string

const (
	// LogStreamsCombined reads one stream from the logs API, which
	// interleaves stdout and stderr: every line is delivered as
	// [runner.Stdout] (as Kestra's Kubernetes task runner logs them all
	// alike). It works on every cluster and is the default.
	LogStreamsCombined LogStreams = "COMBINED"
	// LogStreamsSplit reads stdout and stderr apart, each in its order (the
	// order between the two streams is not kept). It needs the feature gate
	// PodLogsQuerySplitStreams (alpha since Kubernetes 1.32) on the API
	// server and the kubelet; the first Run checks, and fails with
	// [runner.ErrInvalidConfig] naming logStreams when the API server does
	// not have it.
	LogStreamsSplit LogStreams = "SPLIT"
)

// DefaultFileSidecarImage is the image of the containers that move files
// in and out when [FileSidecar.Image] is empty, as in Kestra. It needs a
// POSIX shell, sleep, touch and a tar that reads and writes to stdin and
// stdout.
const DefaultFileSidecarImage = "busybox"

// DefaultWaitUntilRunning bounds, when [Config.WaitUntilRunning] is zero,
// how long a pod may take to be scheduled and to start its containers
// (Kestra's waitUntilRunning default).
const DefaultWaitUntilRunning = 10 * time.Minute

// Config configures a [Runner]. It is a plain struct whose JSON form uses
// the property names of Kestra's Kubernetes task runner where it has one.
// The zero value is valid: the current context of the default kubeconfig
// (or the in-cluster configuration), namespace "default", pull if not
// present, pods deleted, runs waited for.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file. Empty means the
	// in-cluster configuration when the process runs in a pod
	// (KUBERNETES_SERVICE_HOST is set), else the KUBECONFIG variable, else
	// ~/.kube/config, as kubectl reads them.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context is the kubeconfig context to use; empty means its current
	// context.
	Context string `json:"context,omitempty"`

	// Namespace is where pods are created; empty means the kubeconfig
	// context's namespace, else "default".
	Namespace string `json:"namespace,omitempty"`

	// ServiceAccountName is the pod's service account. When it is set, the
	// account's token is mounted in the task's container; when it is empty,
	// the namespace's default account is used and no token is mounted, so
	// a task cannot reach the API server as anyone.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// Labels are added to every pod and secret the runner creates; keys
	// under "dev.lading." are lading's own and refused.
	Labels map[string]string `json:"labels,omitempty"`
	// NodeSelector restricts the nodes a pod may run on.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations let pods run on tainted nodes.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// CPU limits the task's container, in the form of the docker runner:
	// {"cpus": 1.5}. Kubernetes sets the request to the limit when only a
	// limit is given, so the node must have that much CPU unreserved.
	CPU cpu.Config `json:"cpu,omitzero"`
	// Memory limits the task's container: memory.memory is the limit,
	// memory.memoryReservation the request (the limit when unset, as
	// Kubernetes does). The other fields of the block have no Kubernetes
	// form and are refused.
	Memory memory.Config `json:"memory,omitzero"`

	// PullPolicy is IF_NOT_PRESENT (default), ALWAYS or NEVER; it applies
	// to the file sidecar too.
	PullPolicy PullPolicy `json:"pullPolicy,omitempty"`
	// ImagePullSecrets name secrets of the namespace holding registry
	// credentials (type kubernetes.io/dockerconfigjson).
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// FileSidecar is the container that moves input files in before the
	// script starts and output files out after it ends.
	FileSidecar FileSidecar `json:"fileSidecar,omitzero"`

	// MaxOutputBytes and MaxOutputFiles bound what a run hands back (the
	// output directory and the files the globs match, together); going
	// over fails the run's collection with [files.ErrLimit] and removes
	// what it had written. Zero means [files.DefaultMaxBytes] (10 GiB) and
	// [files.DefaultMaxFiles] (100,000).
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
	MaxOutputFiles int   `json:"maxOutputFiles,omitempty"`

	// Delete removes the pod (and the secret holding the task's secrets)
	// when the run ends, whatever the outcome. Nil means true. With false
	// the pod stays, labelled, until [Runner.Prune] or kubectl removes it;
	// the secret goes with it (it is owned by the pod).
	Delete *bool `json:"delete,omitempty"`
	// Wait waits for the script to end. Nil means true. With false, Run
	// returns once the task's container has started: the Result holds the
	// pod's name in its [Details] and the working directory, nothing else;
	// logs, outputs and files are not collected, and the pod is not
	// deleted ([Runner.Prune] sweeps it once it has ended).
	Wait *bool `json:"wait,omitempty"`

	// Resume follows a task in its pod when one exists from an earlier Run
	// with the same [runner.Task.ID] whose process is gone (a crashed or
	// restarted host program), instead of starting the task again, as
	// Kestra's resume does. The resumed run reads the pod's log from its
	// start, so outputs printed before the restart are not lost, and no
	// line is delivered twice within the run; it collects the output files
	// as the earlier run would have. A pod whose process is on another host
	// is taken over, as a restarted worker elsewhere would. Tasks without
	// an ID never resume. Requires Task.ID to be unique among live runs.
	Resume bool `json:"resume,omitempty"`

	// KillGracePeriod is how long a stopped task's containers (cancelled
	// context or timeout) get between SIGTERM and SIGKILL: the pod is
	// deleted with this grace period. Kubernetes counts it in whole
	// seconds, rounded up, and at least 1 s (a grace period of 0 would make
	// the API server forget the pod before its containers have stopped).
	KillGracePeriod Duration `json:"killGracePeriod,omitempty"`
	// WaitUntilRunning bounds how long a pod may take to be scheduled, to
	// pull its images and to start the task's container; zero means
	// [DefaultWaitUntilRunning]. A pod the scheduler cannot place fails
	// with the scheduler's reason once it is reached.
	WaitUntilRunning Duration `json:"waitUntilRunning,omitempty"`

	// LogStreams is COMBINED (default) or SPLIT; see [LogStreamsCombined]
	// and [LogStreamsSplit].
	LogStreams LogStreams `json:"logStreams,omitempty"`

	// Logger receives the runner's own debug and warning messages; nil
	// means none. It has no JSON form.
	Logger *slog.Logger `json:"-"`
}

// FileSidecar configures the containers that move files (Kestra's
// fileSidecar).
type FileSidecar struct {
	// Image is their image; empty means [DefaultFileSidecarImage].
	Image string `json:"image,omitempty"`
}

// Duration is a time.Duration whose JSON form is what Kestra's duration
// properties take: a Go duration string ("5s"), an ISO-8601 duration
// ("PT5S") or a number of seconds (5, "5"). It marshals as a Go duration
// string.
type Duration time.Duration

// String returns the Go form, e.g. "5s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the Go form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a Go or ISO-8601 duration string or a number of
// seconds; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		s = string(b)
	}
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if v < -1e9 || v > 1e9 {
			return fmt.Errorf("%w: duration %s: out of range", runner.ErrInvalidConfig, b)
		}
		*d = Duration(v * float64(time.Second))
		return nil
	}
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	v, err := isoduration.Parse(s)
	if err != nil {
		return fmt.Errorf(`%w: duration %s: must be a Go duration ("5s"), an ISO-8601 one ("PT5S") or a number of seconds`, runner.ErrInvalidConfig, b)
	}
	*d = Duration(v)
	return nil
}

// deletes and waits report the effective values of Delete and Wait.
func (c *Config) deletes() bool { return c.Delete == nil || *c.Delete }
func (c *Config) waits() bool   { return c.Wait == nil || *c.Wait }

func (c *Config) sidecarImage() string {
	if c.FileSidecar.Image == "" {
		return DefaultFileSidecarImage
	}
	return c.FileSidecar.Image
}

func (c *Config) waitUntilRunning() time.Duration {
	if c.WaitUntilRunning <= 0 {
		return DefaultWaitUntilRunning
	}
	return time.Duration(c.WaitUntilRunning)
}

// gracePeriodSeconds is KillGracePeriod in whole seconds, rounded up, at
// least 1.
func (c *Config) gracePeriodSeconds() int64 {
	s := int64((time.Duration(c.KillGracePeriod) + time.Second - 1) / time.Second)
	return max(s, 1)
}

func (c *Config) pullPolicy() corev1.PullPolicy {
	switch c.PullPolicy {
	case PullAlways:
		return corev1.PullAlways
	case PullNever:
		return corev1.PullNever
	}
	return corev1.PullIfNotPresent
}

// Validate reports the first problem with c as a [*runner.FieldError]
// matching [runner.ErrInvalidConfig], naming the field as written in JSON.
func (c *Config) Validate() error {
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return invalidConfig("namespace", c.Namespace, strings.Join(errs, "; "))
		}
	}
	if c.ServiceAccountName != "" {
		if errs := validation.IsDNS1123Subdomain(c.ServiceAccountName); len(errs) > 0 {
			return invalidConfig("serviceAccountName", c.ServiceAccountName, strings.Join(errs, "; "))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if strings.HasPrefix(k, "dev.lading.") {
			return invalidConfig("labels", k, `keys under "dev.lading." are lading's own`)
		}
		if err := checkLabel("labels", k, c.Labels[k]); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.NodeSelector)) {
		if err := checkLabel("nodeSelector", k, c.NodeSelector[k]); err != nil {
			return err
		}
	}
	for i, t := range c.Tolerations {
		field := fmt.Sprintf("tolerations[%d]", i)
		switch t.Operator {
		case "", corev1.TolerationOpEqual:
			if t.Key == "" {
				return invalidConfig(field+".key", "", `must be set unless operator is "Exists"`)
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				return invalidConfig(field+".value", t.Value, `must be empty when operator is "Exists"`)
			}
		default:
			return invalidConfig(field+".operator", string(t.Operator), `must be "Equal" or "Exists"`)
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return invalidConfig(field+".effect", string(t.Effect), "must be NoSchedule, PreferNoSchedule or NoExecute (or empty for all)")
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			return invalidConfig(field+".tolerationSeconds", strconv.FormatInt(*t.TolerationSeconds, 10), `applies only to effect "NoExecute"`)
		}
	}
	if err := c.CPU.Validate(0); err != nil {
		return err
	}
	if err := c.Memory.Validate(); err != nil {
		return err
	}
	m := c.Memory
	switch {
	case m.MemorySwap != 0:
		return invalidConfig("memory.memorySwap", m.MemorySwap.String(), "has no Kubernetes form (a pod's swap is the node's setting)")
	case m.MemorySwappiness != nil:
		return invalidConfig("memory.memorySwappiness", strconv.FormatInt(*m.MemorySwappiness, 10), "has no Kubernetes form")
	case m.KernelMemory != 0:
		return invalidConfig("memory.kernelMemory", m.KernelMemory.String(), "has no Kubernetes form")
	case m.OOMKillDisable != nil:
		return invalidConfig("memory.oomKillDisable", strconv.FormatBool(*m.OOMKillDisable), "has no Kubernetes form")
	}
	switch c.PullPolicy {
	case "", PullIfNotPresent, PullAlways, PullNever:
	default:
		return invalidConfig("pullPolicy", string(c.PullPolicy), "must be one of IF_NOT_PRESENT, ALWAYS, NEVER")
	}
	for i, s := range c.ImagePullSecrets {
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			return invalidConfig(fmt.Sprintf("imagePullSecrets[%d]", i), s, "must name a secret: "+strings.Join(errs, "; "))
		}
	}
	if img := c.FileSidecar.Image; img != "" {
		if _, err := reference.ParseNormalizedNamed(img); err != nil {
			return invalidConfig("fileSidecar.image", img, "is not a valid image reference: "+err.Error())
		}
	}
	if c.MaxOutputBytes < 0 {
		return invalidConfig("maxOutputBytes", strconv.FormatInt(c.MaxOutputBytes, 10), "must not be negative (0 means files.DefaultMaxBytes)")
	}
	if c.MaxOutputFiles < 0 {
		return invalidConfig("maxOutputFiles", strconv.Itoa(c.MaxOutputFiles), "must not be negative (0 means files.DefaultMaxFiles)")
	}
	if c.KillGracePeriod < 0 {
		return invalidConfig("killGracePeriod", c.KillGracePeriod.String(), "must not be negative")
	}
	if c.WaitUntilRunning < 0 {
		return invalidConfig("waitUntilRunning", c.WaitUntilRunning.String(), "must not be negative")
	}
	switch c.LogStreams {
	case "", LogStreamsCombined, LogStreamsSplit:
	default:
		return invalidConfig("logStreams", string(c.LogStreams), "must be COMBINED or SPLIT")
	}
	return nil
}

// checkLabel checks one label (or node selector) key and value.
func checkLabel(field, k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return invalidConfig(field, k, "is not a valid label key: "+strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return invalidConfig(field+"."+k, v, "is not a valid label value: "+strings.Join(errs, "; "))
	}
	return nil
}

func invalidConfig(field, value, problem string) error {
	return &runner.FieldError{Field: field, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}
