package runner_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/lading-dev/lading/runner"
)

func TestTaskFailFast(t *testing.T) {
	tests := []struct {
		interpreter []string
		want        bool
	}{
		{nil, true},
		{[]string{"/bin/sh", "-c"}, true},
		{[]string{"sh", "-c"}, true},
		{[]string{"/bin/bash", "-c"}, true},
		{[]string{"bash", "-lc"}, true},
		{[]string{"/bin/ash", "-ec"}, true},
		{[]string{"dash", "-c"}, true},
		{[]string{"/usr/bin/zsh", "-c"}, true},
		{[]string{"ksh", "-c"}, true},
		{[]string{"/usr/bin/env", "bash", "-c"}, true},
		{[]string{"busybox", "sh", "-c"}, true},
		{[]string{"bash", "-o", "pipefail", "-c"}, true},
		{[]string{"python", "-c"}, false},
		{[]string{"python3", "-c"}, false},
		{[]string{"node", "-e"}, false},
		{[]string{"echo"}, false},
		{[]string{"sh"}, false},
		{[]string{"sh", "-c", "cat"}, false},
		{[]string{"sh", "-e"}, false},
		{[]string{"sh", "--c"}, false},
		{[]string{"/usr/bin/env", "python", "-c"}, false},
		{[]string{"env"}, false},
		{[]string{"bashful", "-c"}, false},
	}
	for _, tt := range tests {
		task := runner.Task{Interpreter: tt.interpreter}
		assert.Equal(t, tt.want, task.FailFast(), "%q", tt.interpreter)
		task.DisableFailFast = true
		assert.False(t, task.FailFast(), "%q with DisableFailFast", tt.interpreter)
	}
}

func TestTaskScript(t *testing.T) {
	task := runner.Task{BeforeCommands: []string{"pip install x", "cd /tmp"}, Commands: []string{"unknown", "echo 1"}}
	// Kestra: the exit-on-error line, then beforeCommands, then commands.
	assert.Equal(t, "set -e\npip install x\ncd /tmp\nunknown\necho 1", task.Script())
	assert.Equal(t, []string{"/bin/sh", "-c", "set -e\npip install x\ncd /tmp\nunknown\necho 1"}, task.Command())
	task.DisableFailFast = true
	assert.Equal(t, "pip install x\ncd /tmp\nunknown\necho 1", task.Script())
	task = runner.Task{Interpreter: []string{"python3", "-c"}, BeforeCommands: []string{"import sys"}, Commands: []string{"print(1)"}}
	assert.Equal(t, []string{"python3", "-c", "import sys\nprint(1)"}, task.Command())
	assert.Equal(t, "echo a", runner.Task{Commands: []string{"echo a"}, DisableFailFast: true}.Script())
}
