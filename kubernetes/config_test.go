package kubernetes_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

func TestConfigValidate(t *testing.T) {
	swappiness, five := int64(10), int64(5)
	tests := []struct {
		name  string
		cfg   kubernetes.Config
		field string
		value string
	}{
		{"namespace", kubernetes.Config{Namespace: "Not_A_Name"}, "namespace", "Not_A_Name"},
		{"service account", kubernetes.Config{ServiceAccountName: "a b"}, "serviceAccountName", "a b"},
		{"lading's label", kubernetes.Config{Labels: map[string]string{"dev.lading.run": "x"}}, "labels", "dev.lading.run"},
		{"label key", kubernetes.Config{Labels: map[string]string{"a b": "x"}}, "labels", "a b"},
		{"label value", kubernetes.Config{Labels: map[string]string{"team": "a b"}}, "labels.team", "a b"},
		{"node selector", kubernetes.Config{NodeSelector: map[string]string{"disk": "ssd/fast"}}, "nodeSelector.disk", "ssd/fast"},
		{"toleration operator", kubernetes.Config{Tolerations: []corev1.Toleration{{Key: "k", Operator: "Maybe"}}}, "tolerations[0].operator", "Maybe"},
		{"toleration without key", kubernetes.Config{Tolerations: []corev1.Toleration{{Value: "v"}}}, "tolerations[0].key", ""},
		{"toleration effect", kubernetes.Config{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: "Sometimes"}}}, "tolerations[0].effect", "Sometimes"},
		{"toleration seconds", kubernetes.Config{Tolerations: []corev1.Toleration{{Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: &five}}}, "tolerations[0].tolerationSeconds", "5"},
		{"cpu", kubernetes.Config{CPU: cpu.Config{CPUs: 1}}, "cpu.cpus", ""},
		{"memory swap", kubernetes.Config{Memory: memory.Config{Memory: 64 << 20, MemorySwap: 128 << 20}}, "memory.memorySwap", ""},
		{"memory swappiness", kubernetes.Config{Memory: memory.Config{MemorySwappiness: &swappiness}}, "memory.memorySwappiness", "10"},
		{"pull policy", kubernetes.Config{PullPolicy: "SOMETIMES"}, "pullPolicy", "SOMETIMES"},
		{"image pull secret", kubernetes.Config{ImagePullSecrets: []string{"ok", "Not OK"}}, "imagePullSecrets[1]", "Not OK"},
		{"sidecar image", kubernetes.Config{FileSidecar: kubernetes.FileSidecar{Image: "busybox::1"}}, "fileSidecar.image", "busybox::1"},
		{"kill grace", kubernetes.Config{KillGracePeriod: kubernetes.Duration(-time.Second)}, "killGracePeriod", "-1s"},
		{"wait until running", kubernetes.Config{WaitUntilRunning: kubernetes.Duration(-time.Second)}, "waitUntilRunning", "-1s"},
		{"log streams", kubernetes.Config{LogStreams: "BOTH"}, "logStreams", "BOTH"},
		{"max output bytes", kubernetes.Config{MaxOutputBytes: -1}, "maxOutputBytes", "-1"},
		{"max output files", kubernetes.Config{MaxOutputFiles: -2}, "maxOutputFiles", "-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			if tt.value != "" {
				assert.Equal(t, tt.value, fe.Value)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		cfg := kubernetes.Config{Namespace: "tasks", ServiceAccountName: "runner", Labels: map[string]string{"team": "data"},
			NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			Tolerations:  []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &five}},
			CPU:          cpu.Config{CPUs: 500}, Memory: memory.Config{Memory: 64 << 20, MemoryReservation: 32 << 20},
			PullPolicy: kubernetes.PullNever, ImagePullSecrets: []string{"regcred"}, FileSidecar: kubernetes.FileSidecar{Image: "busybox:1.36"},
			KillGracePeriod: kubernetes.Duration(time.Second), LogStreams: kubernetes.LogStreamsSplit}
		assert.NoError(t, cfg.Validate())
		assert.NoError(t, (&kubernetes.Config{}).Validate(), "the zero value is valid")
	})
}

func TestConfigJSON(t *testing.T) {
	var cfg kubernetes.Config
	require.NoError(t, json.Unmarshal([]byte(`{"namespace": "tasks", "pullPolicy": "NEVER", "killGracePeriod": "PT5S",
		"waitUntilRunning": 90, "cpu": {"cpus": "500m"}, "memory": {"memory": "64MiB"}, "fileSidecar": {"image": "busybox:1.36"},
		"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], "logStreams": "SPLIT"}`), &cfg))
	assert.Equal(t, "tasks", cfg.Namespace)
	assert.Equal(t, kubernetes.PullNever, cfg.PullPolicy)
	assert.Equal(t, kubernetes.Duration(5*time.Second), cfg.KillGracePeriod)
	assert.Equal(t, kubernetes.Duration(90*time.Second), cfg.WaitUntilRunning)
	assert.Equal(t, cpu.CPUs(500), cfg.CPU.CPUs)
	assert.Equal(t, memory.Size(64<<20), cfg.Memory.Memory)
	assert.Equal(t, "busybox:1.36", cfg.FileSidecar.Image)
	assert.Equal(t, corev1.TaintEffectNoSchedule, cfg.Tolerations[0].Effect)
	assert.NoError(t, cfg.Validate())

	var d kubernetes.Duration
	for in, want := range map[string]time.Duration{`"5s"`: 5 * time.Second, `"PT1M30S"`: 90 * time.Second, `0.25`: 250 * time.Millisecond, `"2"`: 2 * time.Second} {
		require.NoError(t, json.Unmarshal([]byte(in), &d), in)
		assert.Equal(t, kubernetes.Duration(want), d, in)
	}
	err := json.Unmarshal([]byte(`"soon"`), &d)
	assert.ErrorIs(t, err, runner.ErrInvalidConfig)
}

func TestNewRefusesAMissingKubeconfig(t *testing.T) {
	_, err := kubernetes.New(kubernetes.Config{Kubeconfig: "/no/such/kubeconfig"})
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "kubeconfig", fe.Field)
	assert.Equal(t, "/no/such/kubeconfig", fe.Value)
}
