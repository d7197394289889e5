package docker

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/cpu"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// renderedBlock is a taskRunner block as a workflow engine that renders
// every property hands it over: booleans and numbers as strings, numbers
// where Kestra's properties are strings.
const renderedBlock = `{
	"delete": "false", "wait": "TRUE", "privileged": " True ", "init": "false", "resume": "true",
	"pidsLimit": "100", "pullRetries": "-1", "maxOutputBytes": "1048576", "maxOutputFiles": " 10 ",
	"cpu": {"cpus": "1.5"}, "memory": {"memory": "512Mb", "oomKillDisable": "true", "memorySwappiness": "10"},
	"deviceRequests": [{"count": "2", "capabilities": [["gpu"]], "options": {"n": 1}}],
	"user": 1000, "stopSignal": 15, "labels": {"build": 42, "ok": true}, "extraHosts": ["db:10.0.0.5"],
	"killGracePeriod": "5", "pullTimeout": 90, "statsInterval": "1.5", "pullStallTimeout": 0.25, "shmSize": 67108864
}`

// checkRendered checks the Config read from renderedBlock (or its map).
func checkRendered(t *testing.T, cfg Config) {
	t.Helper()
	assert.False(t, cfg.deletes())
	assert.True(t, cfg.waits())
	require.NotNil(t, cfg.Wait)
	assert.True(t, cfg.Privileged)
	assert.False(t, cfg.Init)
	assert.True(t, cfg.Resume)
	assert.Equal(t, int64(100), cfg.PidsLimit)
	assert.Equal(t, -1, cfg.PullRetries)
	assert.Equal(t, int64(1<<20), cfg.MaxOutputBytes)
	assert.Equal(t, 10, cfg.MaxOutputFiles)
	assert.Equal(t, cpu.CPUs(1500), cfg.CPU.CPUs)
	assert.Equal(t, memory.Size(512<<20), cfg.Memory.Memory)
	require.NotNil(t, cfg.Memory.OOMKillDisable)
	assert.True(t, *cfg.Memory.OOMKillDisable)
	require.NotNil(t, cfg.Memory.MemorySwappiness)
	assert.Equal(t, int64(10), *cfg.Memory.MemorySwappiness)
	assert.Equal(t, []DeviceRequest{{Count: 2, Capabilities: [][]string{{"gpu"}}, Options: map[string]string{"n": "1"}}}, cfg.DeviceRequests)
	assert.Equal(t, "1000", cfg.User)
	assert.Equal(t, "15", cfg.StopSignal)
	assert.Equal(t, map[string]string{"build": "42", "ok": "true"}, cfg.Labels)
	assert.Equal(t, []string{"db:10.0.0.5"}, cfg.ExtraHosts)
	assert.Equal(t, 5*time.Second, time.Duration(cfg.KillGracePeriod), "a number of seconds in a string, as Kestra reads a duration")
	assert.Equal(t, 90*time.Second, time.Duration(cfg.PullTimeout), "a JSON number of seconds")
	assert.Equal(t, 1500*time.Millisecond, time.Duration(cfg.StatsInterval))
	assert.Equal(t, 250*time.Millisecond, time.Duration(cfg.PullStallTimeout))
	shm, err := shmSize(cfg.ShmSize)
	require.NoError(t, err)
	assert.Equal(t, int64(64<<20), shm, "shmSize, a string in Kestra, takes a number of bytes")
}

// TestParseConfigRenderedScalars: booleans and numbers written as strings,
// and numbers for string properties, are read as Kestra's Jackson reads
// them. Before, "delete": "false" was "must be true or false".
func TestParseConfigRenderedScalars(t *testing.T) {
	cfg, err := ParseConfigAllowing([]byte(renderedBlock), Allow{Privileged: true, DeviceRequests: true})
	require.NoError(t, err)
	checkRendered(t, cfg)
}

// TestParseConfigScalarGarbage: what is neither the type nor a string
// holding it is a FieldError naming the property and quoting the value.
func TestParseConfigScalarGarbage(t *testing.T) {
	tests := []struct {
		name, json, field, value, problem string
	}{
		{"yes", `{"delete":"yes"}`, "delete", "yes", "must be true or false"},
		{"one as string", `{"wait":"1"}`, "wait", "1", "must be true or false"},
		{"one as number", `{"wait":1}`, "wait", "1", "must be true or false"},
		{"empty boolean", `{"privileged":""}`, "privileged", "", "must be true or false"},
		{"boolean object", `{"init":{"a":1}}`, "init", `{"a":1}`, "must be true or false"},
		{"fraction", `{"pidsLimit":"1.5"}`, "pidsLimit", "1.5", "must be a whole number"},
		{"fraction number", `{"pidsLimit":1.5}`, "pidsLimit", "1.5", "must be a whole number"},
		{"exponent", `{"pullRetries":1e2}`, "pullRetries", "1e2", "must be a whole number"},
		{"word", `{"pidsLimit":"four"}`, "pidsLimit", "four", "must be a whole number"},
		{"empty number", `{"pullRetries":""}`, "pullRetries", "", "must be a whole number"},
		{"overflow", `{"pidsLimit":"99999999999999999999"}`, "pidsLimit", "99999999999999999999", "must be a whole number"},
		{"number true", `{"maxOutputFiles":true}`, "maxOutputFiles", "true", "must be a whole number"},
		{"string object", `{"user":{"a":1}}`, "user", `{"a":1}`, "must be a string"},
		{"string list", `{"user":[1]}`, "user", "[1]", "must be a string"},
		{"list item", `{"extraHosts":["db:10.0.0.5",{"x":1}]}`, "extraHosts[1]", `{"x":1}`, "must be a string"},
		{"label", `{"labels":{"a":[1]}}`, "labels.a", "[1]", "must be a string"},
		{"device count", `{"deviceRequests":[{"count":"all"}]}`, "deviceRequests[0].count", "all", "must be a whole number"},
		{"capability", `{"deviceRequests":[{"capabilities":[["gpu",null,{}]]}]}`, "deviceRequests[0].capabilities[0][2]", "{}", "must be a string"},
		{"duration boolean", `{"killGracePeriod":true}`, "killGracePeriod", "true", "PT5S"},
		{"duration words", `{"killGracePeriod":"5 s"}`, "killGracePeriod", "5 s", "PT5S"},
		{"duration huge", `{"pullTimeout":1e30}`, "pullTimeout", "1e30", "out of range"},
		{"duration dots", `{"pullTimeout":"1.2.3"}`, "pullTimeout", "1.2.3", "PT5S"},
		{"cpus garbage", `{"cpu":{"cpus":true}}`, "cpu.cpus", "true", "number of CPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
			assert.Contains(t, fe.Problem, tt.problem)
			if tt.value != "" {
				assert.Contains(t, err.Error(), strconv.Quote(tt.value))
			} else {
				assert.Contains(t, err.Error(), "not an empty string")
			}
		})
	}
}

// yamlFlowBlock is the taskRunner block of a YAML flow as a YAML library
// decodes it into any: ints, float64s, bools and strings; nested maps as
// map[string]any (go.yaml.in/yaml/v3) or map[any]any (gopkg.in/yaml.v2);
// lists as []any. Programs that build a block by hand use typed maps and
// slices and time.Duration.
func yamlFlowBlock() map[string]any {
	return map[string]any{
		"type":            "io.kestra.plugin.scripts.runner.docker.Docker",
		"pullPolicy":      "NEVER",
		"delete":          false,
		"wait":            "true",
		"pidsLimit":       100,
		"cpu":             map[string]any{"cpus": 1.5},
		"memory":          map[any]any{"memory": "512Mb", "memorySwap": -1, "oomKillDisable": true},
		"shmSize":         "64m",
		"user":            1000,
		"killGracePeriod": "PT5S",
		"statsInterval":   2 * time.Second,
		"pullTimeout":     Duration(time.Minute),
		"labels":          map[any]any{"team": "data", 7: "seven"},
		"entryPoint":      []string{"/bin/sh"},
		"extraHosts":      []any{"db:10.0.0.5"},
		"deviceRequests":  []any{map[string]any{"count": uint8(1), "capabilities": []any{[]any{"gpu"}}}},
		"credentials":     map[string]any{"username": "u", "password": 123456789},
		"init":            nil,
	}
}

// TestParseConfigMap: a block decoded from YAML is read as its JSON would
// be, with Go's numeric and duration types. Before, there was no way in but
// JSON.
func TestParseConfigMap(t *testing.T) {
	cfg, err := ParseConfigMapAllowing(yamlFlowBlock(), Allow{DeviceRequests: true})
	require.NoError(t, err)
	assert.Equal(t, PullNever, cfg.PullPolicy)
	assert.False(t, cfg.deletes())
	assert.True(t, cfg.waits())
	assert.Equal(t, int64(100), cfg.PidsLimit)
	assert.Equal(t, cpu.CPUs(1500), cfg.CPU.CPUs)
	assert.Equal(t, memory.Size(512<<20), cfg.Memory.Memory)
	assert.Equal(t, memory.Unlimited, cfg.Memory.MemorySwap)
	assert.Equal(t, "1000", cfg.User)
	assert.Equal(t, 5*time.Second, time.Duration(cfg.KillGracePeriod))
	assert.Equal(t, 2*time.Second, time.Duration(cfg.StatsInterval), "a time.Duration is its Go form, not nanoseconds read as seconds")
	assert.Equal(t, time.Minute, time.Duration(cfg.PullTimeout))
	assert.Equal(t, map[string]string{"team": "data", "7": "seven"}, cfg.Labels, "YAML keys are read as text, as Jackson reads them")
	assert.Equal(t, []string{"/bin/sh"}, cfg.EntryPoint)
	assert.Equal(t, []DeviceRequest{{Count: 1, Capabilities: [][]string{{"gpu"}}}}, cfg.DeviceRequests)
	require.NotNil(t, cfg.Credentials)
	assert.Equal(t, "123456789", cfg.Credentials.Password)

	var rendered map[string]any
	require.NoError(t, json.Unmarshal([]byte(renderedBlock), &rendered))
	cfg, err = ParseConfigMapAllowing(rendered, Allow{Privileged: true, DeviceRequests: true})
	require.NoError(t, err, "a map from encoding/json (float64 numbers) reads as the JSON does")
	checkRendered(t, cfg)

	cfg, err = ParseConfigMap(nil)
	require.NoError(t, err)
	assert.True(t, cfg.deletes(), "a nil map is an empty block")
}

// TestParseConfigMapErrors: the map entry point checks names exactly and
// names the field and value as the JSON one does, and says which Go value a
// document could not hold.
func TestParseConfigMapErrors(t *testing.T) {
	const secret = "hunter2-map-secret"
	cyclic := map[string]any{}
	cyclic["labels"] = cyclic
	tests := []struct {
		name         string
		block        map[string]any
		field, value string
		problem      string
	}{
		{"other case", map[string]any{"pullpolicy": "ALWAYS"}, "pullpolicy", "", "did you mean pullPolicy?"},
		{"nested typo", map[string]any{"memory": map[any]any{"memorySwapp": "1g"}}, "memory.memorySwapp", "1g", "did you mean memorySwap?"},
		{"list item typo", map[string]any{"deviceRequests": []any{map[string]any{"Count": 1}}}, "deviceRequests[0].Count", "", "did you mean count?"},
		{"credentials typo", map[string]any{"credentials": map[string]any{"Password": secret}}, "credentials.Password", "", "did you mean password?"},
		{"garbage boolean", map[string]any{"delete": "yes"}, "delete", "yes", "must be true or false"},
		{"YAML float for a whole number", map[string]any{"pidsLimit": 1.5}, "pidsLimit", "1.5", "must be a whole number"},
		{"NaN", map[string]any{"cpu": map[string]any{"cpus": math.NaN()}}, "cpu.cpus", "NaN", "must be a finite number"},
		{"Inf secret", map[string]any{"credentials": map[string]any{"password": math.Inf(1)}}, "credentials.password", "", "must be a finite number"},
		{"Go struct", map[string]any{"user": struct{ Name string }{secret}}, "user", "", "Go value of type struct"},
		{"time", map[string]any{"labels": map[string]any{"at": time.Unix(0, 0)}}, "labels.at", "", "Go value of type time.Time"},
		{"function", map[string]any{"wait": func() {}}, "wait", "", "Go value of type func()"},
		{"list key", map[string]any{"labels": map[any]any{[2]int{1, 2}: "x"}}, "labels", "", "key of Go type [2]int"},
		{"typed list key", map[string]any{"labels": map[[2]int]string{{1, 2}: "x"}}, "labels", "", "key of Go type [2]int"},
		{"nil key", map[string]any{"labels": map[any]any{nil: "x"}}, "labels", "", "key of Go type nil"},
		{"same key twice", map[string]any{"labels": map[any]any{1: "a", "1": "b"}}, "labels.1", "", "given twice"},
		{"bad json.Number", map[string]any{"pidsLimit": json.Number("1x")}, "pidsLimit", "1x", "not a number"},
		{"cycle", cyclic, "labels.labels.labels", "", "nested too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfigMap(tt.block)
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.True(t, strings.HasPrefix(fe.Field, tt.field), "field %q", fe.Field)
			assert.Equal(t, tt.value, fe.Value)
			assert.Contains(t, err.Error(), tt.problem)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

// FuzzParseConfigMap: any document a JSON or YAML decoder could give,
// with Go's numeric types mixed in, gives a Config or an error matching
// ErrInvalidConfig, never a panic, and quotes nothing inside credentials or
// an inline config.
func FuzzParseConfigMap(f *testing.F) {
	for _, seed := range []string{`{}`, renderedBlock, `{"pullpolicy":1}`, `{"memory":{"memory":512}}`, `{"labels":{"1":2}}`,
		`{"credentials":{"password":"hunter2-fuzz"}}`, `{"config":{"auths":{}}}`, `{"deviceRequests":[{"count":"1"}]}`} {
		f.Add([]byte(seed), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, mix uint8) {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		if dec.Decode(&m) != nil {
			return
		}
		for k, e := range m {
			m[k] = retype(e, mix)
		}
		_, err := ParseConfigMap(m)
		if err == nil {
			return
		}
		if !errors.Is(err, runner.ErrInvalidConfig) {
			t.Fatalf("%s: error %v does not match ErrInvalidConfig", data, err)
		}
		var fe *runner.FieldError
		if errors.As(err, &fe) && (strings.HasPrefix(fe.Field, "credentials") && fe.Value != "" || fe.Field == "config" && strings.HasPrefix(strings.TrimSpace(fe.Value), "{")) {
			t.Fatalf("%s: a credentials or inline config value is quoted: %v", data, err)
		}
	})
}

// retype turns json.Numbers into the Go types a YAML decoder gives (int,
// float64) or others (uint8, float32, int64), and objects into map[any]any,
// as mix says.
func retype(v any, mix uint8) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			switch mix % 4 {
			case 0:
				return int(i)
			case 1:
				return uint8(i)
			case 2:
				return i
			}
		}
		f, _ := x.Float64()
		if mix%2 == 1 {
			return float32(f)
		}
		return f
	case []any:
		for i := range x {
			x[i] = retype(x[i], mix/2)
		}
	case map[string]any:
		if mix%3 == 2 {
			out := make(map[any]any, len(x))
			for k, e := range x {
				out[k] = retype(e, mix/3)
			}
			return out
		}
		for k, e := range x {
			x[k] = retype(e, mix/3)
		}
	}
	return v
}
