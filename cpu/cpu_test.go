package cpu

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// requireFieldError checks that err is a *runner.FieldError with the given
// field, value and a problem containing problem, matching ErrInvalidConfig.
func requireFieldError(t *testing.T, err error, field, value, problem string) {
	t.Helper()
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, field, fe.Field, "field")
	assert.Equal(t, value, fe.Value, "value")
	assert.Contains(t, fe.Problem, problem, "problem")
}

func TestParseCPUs(t *testing.T) {
	tests := []struct {
		in     string
		milli  int64
		nano   int64
		string string
	}{
		{"1.5", 1500, 1_500_000_000, "1.5"},
		{"1", 1000, 1_000_000_000, "1"},
		{"4", 4000, 4_000_000_000, "4"},
		{"0.25", 250, 250_000_000, "0.25"},
		{"0.001", 1, 1_000_000, "0.001"},
		{"1.500", 1500, 1_500_000_000, "1.5"},
		{"1.0", 1000, 1_000_000_000, "1"},
		{"0.0000", 0, 0, "0"},
		{"500m", 500, 500_000_000, "0.5"},
		{"1500m", 1500, 1_500_000_000, "1.5"},
		{"1m", 1, 1_000_000, "0.001"},
		{"0", 0, 0, "0"},
		{"0m", 0, 0, "0"},
		{" 2 ", 2000, 2_000_000_000, "2"},
		{"1000000", 1_000_000_000, 1_000_000_000_000_000, "1000000"},
		{"1000000000m", 1_000_000_000, 1_000_000_000_000_000, "1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := ParseCPUs(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.milli, c.Millicores())
			assert.Equal(t, tt.nano, c.NanoCPUs())
			assert.Equal(t, tt.string, c.String())
		})
	}
}

func TestParseCPUsRefuses(t *testing.T) {
	tests := []struct{ name, in, problem string }{
		{"empty", "", "must be a number of CPUs"},
		{"spaces", "  ", "must be a number of CPUs"},
		{"word", "lots", "must be a number of CPUs"},
		{"trailing junk", "1.5x", "must be a number of CPUs"},
		{"NaN", "NaN", "must be a number of CPUs"},
		{"Inf", "Inf", "must be a number of CPUs"},
		{"plus sign", "+1", "must be a number of CPUs"},
		{"exponent", "1e3", "must be a number of CPUs"},
		{"hex", "0x10", "must be a number of CPUs"},
		{"bare fraction", ".5", "must be a number of CPUs"},
		{"bare point", "1.", "must be a number of CPUs"},
		{"two points", "1..5", "must be a number of CPUs"},
		{"inner space", "1 000", "must be a number of CPUs"},
		{"fractional millicores", "1.5m", "must be a number of CPUs"},
		{"bare m", "m", "must be a number of CPUs"},
		{"capital M", "500M", "must be a number of CPUs"},
		{"negative", "-1", "must not be negative"},
		{"negative fraction", "-0.5", "must not be negative"},
		{"negative zero", "-0", "must not be negative"},
		{"negative garbage", "-x", "must be a number of CPUs"},
		{"negative millicores", "-5m", "must not be negative"},
		{"negative and too fine", "-1.0005", "must not be negative"},
		{"two signs", "--1", "must be a number of CPUs"},
		{"finer than a millicore", "0.0001", "finer than a millicore"},
		{"finer than a millicore above one", "1.0005", "finer than a millicore"},
		{"above max", "1000001", "at most 1000000 CPUs"},
		{"above max in millicores", "1000000001m", "at most 1000000 CPUs"},
		{"overflow", "99999999999999999999", "at most 1000000 CPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCPUs(tt.in)
			requireFieldError(t, err, "cpu.cpus", tt.in, tt.problem)
		})
	}
}

func TestConfigJSON(t *testing.T) {
	tests := []struct {
		name, in string
		milli    int64
		out      string // MarshalJSON of the decoded Config
	}{
		{"Kestra's integer", `{"cpus":1}`, 1000, `{"cpus":1}`},
		{"number", `{"cpus":1.5}`, 1500, `{"cpus":1.5}`},
		{"string", `{"cpus":"1.5"}`, 1500, `{"cpus":1.5}`},
		{"millicores", `{"cpus":"1500m"}`, 1500, `{"cpus":"1500m"}`},
		{"trailing zeros kept", `{"cpus":1.50}`, 1500, `{"cpus":1.50}`},
		{"spaces kept", `{"cpus":" 2 "}`, 2000, `{"cpus":" 2 "}`},
		{"zero", `{"cpus":0}`, 0, `{}`},
		{"null", `{"cpus":null}`, 0, `{}`},
		{"empty", `{}`, 0, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			require.NoError(t, json.Unmarshal([]byte(tt.in), &c))
			assert.Equal(t, tt.milli, c.CPUs.Millicores())
			out, err := json.Marshal(c)
			require.NoError(t, err)
			assert.Equal(t, tt.out, string(out))

			var back Config
			require.NoError(t, json.Unmarshal(out, &back))
			assert.Equal(t, c, back, "round trip")
		})
	}
}

func TestMarshalGoValues(t *testing.T) {
	for _, tt := range []struct {
		c    Config
		want string
	}{
		{Config{CPUs: 1500}, `{"cpus":1.5}`},
		{Config{CPUs: 4000}, `{"cpus":4}`},
		{Config{CPUs: 1}, `{"cpus":0.001}`},
		{Config{}, `{}`},
	} {
		t.Run(tt.want, func(t *testing.T) {
			out, err := json.Marshal(tt.c)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(out))
		})
	}
	t.Run("a changed value drops the spelling", func(t *testing.T) {
		var c Config
		require.NoError(t, json.Unmarshal([]byte(`{"cpus":"500m"}`), &c))
		c.CPUs = 2000
		out, err := json.Marshal(c)
		require.NoError(t, err)
		assert.Equal(t, `{"cpus":2}`, string(out))
	})
}

func TestCPUsJSON(t *testing.T) {
	var c CPUs
	require.NoError(t, json.Unmarshal([]byte(`"250m"`), &c))
	assert.Equal(t, CPUs(250), c)
	out, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Equal(t, `0.25`, string(out))
	require.NoError(t, json.Unmarshal([]byte(`null`), &c))
	assert.Equal(t, CPUs(250), c, "null leaves it")
}

func TestUnmarshalRefuses(t *testing.T) {
	tests := []struct{ name, in, field, value, problem string }{
		{"garbage string", `{"cpus":"lots"}`, "cpu.cpus", "lots", "must be a number of CPUs"},
		{"negative number", `{"cpus":-1}`, "cpu.cpus", "-1", "must not be negative"},
		{"negative string", `{"cpus":"-1.5"}`, "cpu.cpus", "-1.5", "must not be negative"},
		{"exponent", `{"cpus":1e3}`, "cpu.cpus", "1e3", "must be a number of CPUs"},
		{"finer than a millicore", `{"cpus":0.0005}`, "cpu.cpus", "0.0005", "finer than a millicore"},
		{"boolean", `{"cpus":true}`, "cpu.cpus", "true", "must be a number of CPUs"},
		{"object", `{"cpus":{"n":1}}`, "cpu.cpus", `{"n":1}`, "must be a number of CPUs"},
		{"unknown property", `{"cpus":1,"cpuset":"0-1"}`, "cpu.cpuset", "0-1", "not a cpu property"},
		{"misspelt property", `{"cpu":1}`, "cpu.cpu", "1", "not a cpu property"},
		{"not an object", `1.5`, "cpu", "1.5", "must be an object"},
		{"a string, not an object", `"2"`, "cpu", "2", "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{CPUs: 7000}
			err := json.Unmarshal([]byte(tt.in), &c)
			requireFieldError(t, err, tt.field, tt.value, tt.problem)
			assert.Equal(t, CPUs(7000), c.CPUs, "unchanged on error")

			// Nested in a runner's configuration, read the way the docker
			// runner reads it: the FieldError survives json's wrapping.
			var wire struct {
				CPU Config `json:"cpu"`
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(`{"cpu":` + tt.in + `}`)))
			dec.DisallowUnknownFields()
			requireFieldError(t, dec.Decode(&wire), tt.field, tt.value, tt.problem)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		json      string // decoded into the Config when set
		c         Config
		available int
		value     string // the FieldError's Value; "" when valid
		problem   string
	}{
		{name: "no limit", c: Config{}, available: 2},
		{name: "no limit, no engine", c: Config{}},
		{name: "below the engine", json: `{"cpus":1.5}`, available: 2},
		{name: "all of the engine", json: `{"cpus":2}`, available: 2},
		{name: "the minimum", json: `{"cpus":"10m"}`, available: 2},
		{name: "engine unknown", json: `{"cpus":4096}`},
		{name: "above the engine", json: `{"cpus":2.5}`, available: 2, value: "2.5", problem: "more than the 2 CPUs the engine has"},
		{name: "above the engine in millicores", json: `{"cpus":"2500m"}`, available: 2, value: "2500m", problem: "more than the 2 CPUs"},
		{name: "above the engine, as a string", json: `{"cpus":"4096"}`, available: 8, value: "4096", problem: "more than the 8 CPUs"},
		{name: "below the minimum", json: `{"cpus":"5m"}`, value: "5m", problem: "at least 0.01 (10m)"},
		{name: "below the minimum as a decimal", json: `{"cpus":0.009}`, value: "0.009", problem: "at least 0.01"},
		{name: "negative, set in Go", c: Config{CPUs: -1500}, value: "-1.5", problem: "must not be negative"},
		{name: "above the max, set in Go", c: Config{CPUs: MaxCPUs + 1}, value: "1000000.001", problem: "at most 1000000 CPUs"},
		{name: "set in Go", c: Config{CPUs: 3000}, available: 2, value: "3", problem: "more than the 2 CPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if tt.json != "" {
				require.NoError(t, json.Unmarshal([]byte(tt.json), &c))
			}
			err := c.Validate(tt.available)
			if tt.value == "" {
				require.NoError(t, err)
				return
			}
			requireFieldError(t, err, "cpu.cpus", tt.value, tt.problem)
		})
	}
	t.Run("a changed value is quoted as it is now", func(t *testing.T) {
		var c Config
		require.NoError(t, json.Unmarshal([]byte(`{"cpus":"500m"}`), &c))
		c.CPUs = 3000
		requireFieldError(t, c.Validate(2), "cpu.cpus", "3", "more than the 2 CPUs")
	})
}

func FuzzParseCPUs(f *testing.F) {
	for _, s := range []string{"1.5", "500m", "0", "-1", "1e3", "0.0005", "1000000", " 2 ", "1.50", "-0m", "9999999999999999999m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPUs(s)
		if err != nil {
			var fe *runner.FieldError
			if !assert.ErrorAs(t, err, &fe) || fe.Value != s {
				t.Fatalf("%q: error %v does not quote the input", s, err)
			}
			return
		}
		if c < 0 || c > MaxCPUs {
			t.Fatalf("%q gave %d millicores", s, c)
		}
		again, err := ParseCPUs(c.String())
		if err != nil || again != c {
			t.Fatalf("%q -> %s -> %d, %v", s, c, again, err)
		}
		out, err := json.Marshal(Config{CPUs: c})
		require.NoError(t, err)
		var back Config
		require.NoError(t, json.Unmarshal(out, &back), "%s", out)
		if back.CPUs != c {
			t.Fatalf("%q -> %s -> %d", s, out, back.CPUs)
		}
	})
}

func BenchmarkParseCPUs(b *testing.B) {
	for b.Loop() {
		if _, err := ParseCPUs("1.5"); err != nil {
			b.Fatal(err)
		}
	}
}
