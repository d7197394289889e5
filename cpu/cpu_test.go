package cpu

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestParseCPUs(t *testing.T) {
	for in, want := range map[string]int64{"1.5": 1_500_000_000, "2": 2_000_000_000, "500m": 500_000_000, "0.25": 250_000_000, "0": 0, "1m": 1_000_000} {
		t.Run(in, func(t *testing.T) {
			c, err := ParseCPUs(in)
			require.NoError(t, err)
			assert.Equal(t, want, c.NanoCPUs())
		})
	}
	for _, bad := range []string{"-1", "-5m", "abc", "1.5x", "NaN", "Inf", "0.0001", "", "1e12"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := ParseCPUs(bad)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "cpu.cpus", fe.Field)
			assert.Equal(t, bad, fe.Value)
			assert.ErrorIs(t, err, runner.ErrInvalidConfig)
		})
	}
}

func TestJSON(t *testing.T) {
	for _, in := range []string{`{"cpus":1.5}`, `{"cpus":"1.5"}`, `{"cpus":"1500m"}`} {
		var c Config
		require.NoError(t, json.Unmarshal([]byte(in), &c), in)
		assert.Equal(t, int64(1_500_000_000), c.CPUs.NanoCPUs(), in)
		out, err := json.Marshal(c)
		require.NoError(t, err)
		assert.JSONEq(t, `{"cpus":1.5}`, string(out))
	}
	var c Config
	err := json.Unmarshal([]byte(`{"cpus":"lots"}`), &c)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe, "json keeps the FieldError")
	assert.Equal(t, "lots", fe.Value)
}

func TestValidate(t *testing.T) {
	require.NoError(t, Config{CPUs: 2000}.Validate(2))
	require.NoError(t, Config{}.Validate(2))
	err := Config{CPUs: 2500}.Validate(2)
	require.ErrorIs(t, err, runner.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "2.5")
	assert.Contains(t, err.Error(), "2 CPUs")
}

func FuzzParseCPUs(f *testing.F) {
	for _, s := range []string{"1.5", "500m", "-1", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPUs(s)
		if err != nil {
			return
		}
		if c < 0 {
			t.Fatalf("%q gave negative %d", s, c)
		}
		again, err := ParseCPUs(c.String())
		if err != nil || again != c {
			t.Fatalf("%q -> %s -> %v, %v", s, c, again, err)
		}
	})
}
