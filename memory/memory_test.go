package memory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
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

// decode unmarshals a memory block, failing the test on error.
func decode(t *testing.T, block string) Config {
	t.Helper()
	var c Config
	require.NoError(t, json.Unmarshal([]byte(block), &c), block)
	return c
}

func ptr[T any](v T) *T { return &v }

func TestParseSize(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		in     string
		want   Size
		string string
	}{
		// The spellings in Kestra's documentation.
		{"512MB", 512 * mib, "512MiB"},
		{"512Mb", 512 * mib, "512MiB"},
		{"512mb", 512 * mib, "512MiB"},
		{"512000KB", 524_288_000, "500MiB"},
		{"0.5GB", 536_870_912, "512MiB"},
		// go-units' other spellings: all binary.
		{"512m", 512 * mib, "512MiB"},
		{"512M", 512 * mib, "512MiB"},
		{"512MiB", 512 * mib, "512MiB"},
		{"512mib", 512 * mib, "512MiB"},
		{"64m", 64 * mib, "64MiB"},
		{"64k", 64 << 10, "64KiB"},
		{"0.5g", 512 * mib, "512MiB"},
		{"2g", 2 << 30, "2GiB"},
		{"1t", 1 << 40, "1TiB"},
		{"1p", 1 << 50, "1PiB"},
		{"64 MiB", 64 * mib, "64MiB"},
		// Kubernetes' binary units.
		{"512Mi", 512 * mib, "512MiB"},
		{"512mi", 512 * mib, "512MiB"},
		{"2Gi", 2 << 30, "2GiB"},
		{"1.5Gi", 1536 * mib, "1536MiB"},
		{"1Ti", 1 << 40, "1TiB"},
		{"100Ki", 102_400, "100KiB"},
		{"1Pi", 1 << 50, "1PiB"},
		{"64 Mi", 64 * mib, "64MiB"},
		// Bytes.
		{"1024", 1024, "1KiB"},
		{"1000", 1000, "1000"},
		{"1000b", 1000, "1000"},
		{"1000B", 1000, "1000"},
		{"0", 0, "0"},
		{"0k", 0, "0"},
		{"0.1k", 102, "102"}, // 102.4 bytes: the fraction of a byte is dropped
		{" 64m ", 64 * mib, "64MiB"},
		{"4096PiB", MaxSize, "4096PiB"},
		{"-1", Unlimited, "-1"},
		{" -1 ", Unlimited, "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.string, got.String())
			assert.Equal(t, int64(tt.want), got.Bytes())
		})
	}
}

func TestParseSizeRefuses(t *testing.T) {
	tests := []struct{ name, in, problem string }{
		{"empty", "", shape},
		{"spaces", "   ", shape},
		{"word", "lots", shape},
		{"unit only", "Mi", shape},
		{"unknown unit", "5x", shape},
		{"exbibytes", "5Ei", shape},
		{"too long a unit", "5mbb", shape},
		{"comma", "1,5GB", shape},
		{"two points", "1.2.3m", shape},
		{"two spaces", "5  m", shape},
		{"NaN", "NaN", shape},
		{"Inf", "Inf", shape},
		{"two signs", "--1", shape},
		{"invalid UTF-8 after a unit", "5P\x80", shape},
		{"non-ASCII unit", "5Mé", shape},
		{"non-ASCII digits", "５m", shape},
		{"negative", "-5m", "must not be negative"},
		{"negative Kubernetes", "-5Mi", "must not be negative"},
		{"negative zero", "-0", "must not be negative"},
		{"minus two", "-2", "must not be negative"},
		{"less than a byte", "0.1", "at least one byte"},
		{"far less than a byte", "1e-400", "at least one byte"},
		{"above the max", "4097PiB", "at most 4096PiB"},
		{"beyond int64", "9999999999t", "at most 4096PiB"},
		{"far beyond int64", "1e300p", "at most 4096PiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSize(tt.in)
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			assert.Contains(t, err.Error(), fmt.Sprintf("size %q", tt.in))
			assert.Contains(t, err.Error(), tt.problem)
		})
	}
}

func TestSizeJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		out  string
	}{
		{`"512Mb"`, 512 << 20, `"512MiB"`},
		{`"0.5GB"`, 536_870_912, `"512MiB"`},
		{`67108864`, 64 << 20, `"64MiB"`},
		{`1000`, 1000, `"1000"`},
		{`-1`, Unlimited, `"-1"`},
		{`"-1"`, Unlimited, `"-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s Size
			require.NoError(t, json.Unmarshal([]byte(tt.in), &s))
			assert.Equal(t, tt.want, s)
			out, err := json.Marshal(s)
			require.NoError(t, err)
			assert.Equal(t, tt.out, string(out))
		})
	}
	t.Run("null leaves it", func(t *testing.T) {
		s := Size(7)
		require.NoError(t, json.Unmarshal([]byte(`null`), &s))
		assert.Equal(t, Size(7), s)
	})
	for _, bad := range []string{`"lots"`, `true`, `[1]`, `-5`} {
		t.Run("refuses "+bad, func(t *testing.T) {
			var s Size
			require.ErrorIs(t, json.Unmarshal([]byte(bad), &s), runner.ErrInvalidConfig)
		})
	}
}

func TestKestraBlock(t *testing.T) {
	c := decode(t, `{"memory":"512Mb","memorySwap":"1Gi","memorySwappiness":60,"oomKillDisable":"true"}`)
	assert.Equal(t, Size(512<<20), c.Memory)
	assert.Equal(t, Size(1<<30), c.MemorySwap)
	assert.Equal(t, ptr(int64(60)), c.MemorySwappiness)
	assert.Equal(t, ptr(true), c.OOMKillDisable)
	require.NoError(t, c.Validate())
	assert.Empty(t, c.Warnings())
	assert.Equal(t, Limits{
		Memory:           536_870_912,
		MemorySwap:       1_073_741_824,
		MemorySwappiness: ptr(int64(60)),
		OOMKillDisable:   ptr(true),
	}, c.Limits())

	t.Run("every property", func(t *testing.T) {
		c := decode(t, `{"memory":"1g","memorySwap":"-1","memorySwappiness":"0","memoryReservation":"0.5GB","kernelMemory":"64m","oomKillDisable":false}`)
		require.NoError(t, c.Validate())
		assert.Equal(t, Limits{
			Memory:            1 << 30,
			MemorySwap:        -1,
			MemoryReservation: 512 << 20,
			KernelMemory:      64 << 20,
			MemorySwappiness:  ptr(int64(0)),
			OOMKillDisable:    ptr(false),
		}, c.Limits())
	})
	t.Run("numbers of bytes and booleans", func(t *testing.T) {
		c := decode(t, `{"memory":67108864,"memorySwap":134217728,"oomKillDisable":true}`)
		require.NoError(t, c.Validate())
		assert.Equal(t, Limits{Memory: 64 << 20, MemorySwap: 128 << 20, OOMKillDisable: ptr(true)}, c.Limits())
	})
	t.Run("nulls and zeros are unset", func(t *testing.T) {
		c := decode(t, `{"memory":null,"memorySwap":"0","memorySwappiness":null,"memoryReservation":0,"kernelMemory":"0b","oomKillDisable":null}`)
		assert.Equal(t, Config{}, c)
		require.NoError(t, c.Validate())
		assert.Equal(t, Limits{}, c.Limits())
	})
	t.Run("strings in any case, with spaces", func(t *testing.T) {
		c := decode(t, `{"memory":"64m","memorySwappiness":" 10 ","oomKillDisable":"FALSE"}`)
		assert.Equal(t, ptr(int64(10)), c.MemorySwappiness)
		assert.Equal(t, ptr(false), c.OOMKillDisable)
	})
	t.Run("null block", func(t *testing.T) {
		c := Config{Memory: 64 << 20}
		require.NoError(t, json.Unmarshal([]byte(`null`), &c))
		assert.Equal(t, Size(64<<20), c.Memory)
	})
}

func TestConfigJSONRoundTrip(t *testing.T) {
	tests := []struct{ name, in, out string }{
		{"spellings kept", `{"memory":"512Mb","memorySwap":"1Gi","memorySwappiness":60,"oomKillDisable":"true"}`,
			`{"memory":"512Mb","memorySwap":"1Gi","memorySwappiness":60,"oomKillDisable":true}`},
		{"numbers become strings", `{"memory":67108864,"memorySwap":-1}`, `{"memory":"67108864","memorySwap":"-1"}`},
		{"order and case are Kestra's", `{"oomKillDisable":false,"kernelMemory":"4m","memoryReservation":"8m","memory":"0.5GB"}`,
			`{"memory":"0.5GB","memoryReservation":"8m","kernelMemory":"4m","oomKillDisable":false}`},
		{"unset is left out", `{"memory":"0","memorySwappiness":null}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decode(t, tt.in)
			out, err := json.Marshal(c)
			require.NoError(t, err)
			assert.Equal(t, tt.out, string(out))
			assert.Equal(t, c, decode(t, string(out)), "round trip")
		})
	}
	t.Run("set in Go", func(t *testing.T) {
		c := Config{Memory: 512 << 20, MemorySwap: Unlimited, MemoryReservation: 1536 << 10, MemorySwappiness: ptr(int64(5))}
		out, err := json.Marshal(c)
		require.NoError(t, err)
		assert.Equal(t, `{"memory":"512MiB","memorySwap":"-1","memorySwappiness":5,"memoryReservation":"1536KiB"}`, string(out))
		assert.Equal(t, c.Limits(), decode(t, string(out)).Limits())
	})
	t.Run("a changed field drops its spelling", func(t *testing.T) {
		c := decode(t, `{"memory":"512Mb","memorySwap":"1Gi"}`)
		c.Memory = 256 << 20
		out, err := json.Marshal(c)
		require.NoError(t, err)
		assert.Equal(t, `{"memory":"256MiB","memorySwap":"1Gi"}`, string(out))
	})
}

func TestUnmarshalRefuses(t *testing.T) {
	tests := []struct{ name, in, field, value, problem string }{
		{"garbage size", `{"memory":"lots"}`, "memory.memory", "lots", shape},
		{"empty size", `{"memory":""}`, "memory.memory", "", shape},
		{"negative size", `{"memoryReservation":"-5m"}`, "memory.memoryReservation", "-5m", "must not be negative"},
		{"negative number of bytes", `{"kernelMemory":-5}`, "memory.kernelMemory", "-5", "must not be negative"},
		{"unknown unit", `{"memorySwap":"1Ei"}`, "memory.memorySwap", "1Ei", shape},
		{"huge", `{"memory":"9999999999t"}`, "memory.memory", "9999999999t", "at most 4096PiB"},
		{"less than a byte", `{"memory":0.5}`, "memory.memory", "0.5", "at least one byte"},
		{"boolean size", `{"memory":true}`, "memory.memory", "true", shape},
		{"object size", `{"memory":{"value":"1g"}}`, "memory.memory", `{"value":"1g"}`, shape},
		{"swappiness word", `{"memorySwappiness":"often"}`, "memory.memorySwappiness", "often", "whole number from 0 to 100"},
		{"swappiness fraction", `{"memorySwappiness":60.5}`, "memory.memorySwappiness", "60.5", "whole number"},
		{"swappiness boolean", `{"memorySwappiness":true}`, "memory.memorySwappiness", "true", "whole number"},
		{"oomKillDisable word", `{"oomKillDisable":"maybe"}`, "memory.oomKillDisable", "maybe", "true or false"},
		{"oomKillDisable number", `{"oomKillDisable":1}`, "memory.oomKillDisable", "1", "true or false"},
		{"oomKillDisable yes", `{"oomKillDisable":"yes"}`, "memory.oomKillDisable", "yes", "true or false"},
		{"unknown property", `{"memory":"64m","swap":"1g"}`, "memory.swap", "1g", "not a memory property"},
		{"misspelt property", `{"memroy":"64m"}`, "memory.memroy", "64m", "not a memory property"},
		{"property in the wrong case", `{"Memory":"64m"}`, "memory.Memory", "64m", "not a memory property"},
		{"a size, not a block", `"512Mb"`, "memory", "512Mb", "must be an object"},
		{"a number, not a block", `536870912`, "memory", "536870912", "must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Memory: 64 << 20}
			err := json.Unmarshal([]byte(tt.in), &c)
			requireFieldError(t, err, tt.field, tt.value, tt.problem)
			assert.Equal(t, Config{Memory: 64 << 20}, c, "unchanged on error")

			// Nested in a runner's configuration, read the way the docker
			// runner reads it: the FieldError survives json's wrapping.
			var wire struct {
				Memory Config `json:"memory"`
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(`{"memory":` + tt.in + `}`)))
			dec.DisallowUnknownFields()
			requireFieldError(t, dec.Decode(&wire), tt.field, tt.value, tt.problem)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		json  string // decoded into the Config when set
		c     Config
		field string // the FieldError's Field; "" when valid
		value string
		want  string // in the problem
	}{
		{name: "nothing set"},
		{name: "the minimum memory", json: `{"memory":"6m"}`},
		{name: "swap equal to memory", json: `{"memory":"64m","memorySwap":"64m"}`},
		{name: "unlimited swap", json: `{"memory":"64m","memorySwap":"-1"}`},
		{name: "unlimited swap without memory", json: `{"memorySwap":-1}`},
		{name: "reservation alone", json: `{"memoryReservation":"64m"}`},
		{name: "reservation equal to memory", json: `{"memory":"64m","memoryReservation":"64Mi"}`},
		{name: "swappiness bounds", json: `{"memorySwappiness":0}`},
		{name: "swappiness 100", json: `{"memorySwappiness":"100"}`},
		{name: "oomKillDisable false without memory", json: `{"oomKillDisable":false}`},
		{name: "the minimum kernel memory", json: `{"kernelMemory":"4m"}`},

		{name: "memory below the minimum", json: `{"memory":"5m"}`,
			field: "memory.memory", value: "5m", want: "at least 6MiB"},
		{name: "memory of a few bytes", json: `{"memory":"1k"}`,
			field: "memory.memory", value: "1k", want: "the Engine's minimum"},
		{name: "memory just below the minimum", json: `{"memory":6291455}`,
			field: "memory.memory", value: "6291455", want: "at least 6MiB"},
		{name: "memory unlimited", json: `{"memory":"-1"}`,
			field: "memory.memory", value: "-1", want: "-1, unlimited, is for memorySwap only"},
		{name: "swap without memory", json: `{"memorySwap":"1Gi"}`,
			field: "memory.memorySwap", value: "1Gi", want: "needs memory.memory"},
		{name: "swap below memory", json: `{"memory":"512Mb","memorySwap":"256Mi"}`,
			field: "memory.memorySwap", value: "256Mi", want: `below memory.memory (512Mb)`},
		{name: "swappiness above 100", json: `{"memory":"64m","memorySwappiness":101}`,
			field: "memory.memorySwappiness", value: "101", want: "from 0 to 100"},
		{name: "swappiness negative", json: `{"memorySwappiness":"-1"}`,
			field: "memory.memorySwappiness", value: "-1", want: "from 0 to 100"},
		{name: "reservation below the minimum", json: `{"memoryReservation":"5m"}`,
			field: "memory.memoryReservation", value: "5m", want: "at least 6MiB"},
		{name: "reservation above memory", json: `{"memory":"64m","memoryReservation":"0.5GB"}`,
			field: "memory.memoryReservation", value: "0.5GB", want: "below memory.memory (64m)"},
		{name: "reservation unlimited", json: `{"memoryReservation":-1}`,
			field: "memory.memoryReservation", value: "-1", want: "for memorySwap only"},
		{name: "kernel memory below the minimum", json: `{"memory":"64m","kernelMemory":"1m"}`,
			field: "memory.kernelMemory", value: "1m", want: "at least 4MiB"},
		{name: "oomKillDisable without memory", json: `{"oomKillDisable":"true"}`,
			field: "memory.oomKillDisable", value: "true", want: "needs memory.memory"},
		{name: "oomKillDisable without memory, swap unlimited", json: `{"memorySwap":"-1","oomKillDisable":true}`,
			field: "memory.oomKillDisable", value: "true", want: "needs memory.memory"},

		// Set in Go: the value is quoted in the form of Size.String.
		{name: "negative memory", c: Config{Memory: -(64 << 20)},
			field: "memory.memory", value: "-64MiB", want: "must not be negative"},
		{name: "negative swap", c: Config{Memory: 64 << 20, MemorySwap: -2},
			field: "memory.memorySwap", value: "-2", want: "except -1 for unlimited swap"},
		{name: "negative reservation", c: Config{MemoryReservation: -(8 << 20)},
			field: "memory.memoryReservation", value: "-8MiB", want: "must not be negative"},
		{name: "negative kernel memory", c: Config{KernelMemory: -1024},
			field: "memory.kernelMemory", value: "-1KiB", want: "must not be negative"},
		{name: "small memory", c: Config{Memory: 5 << 20},
			field: "memory.memory", value: "5MiB", want: "at least 6MiB"},
		{name: "swappiness", c: Config{MemorySwappiness: ptr(int64(200))},
			field: "memory.memorySwappiness", value: "200", want: "from 0 to 100"},
		{name: "first field first", c: Config{Memory: 1, MemorySwap: 1, MemorySwappiness: ptr(int64(-1))},
			field: "memory.memory", value: "1", want: "at least 6MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if tt.json != "" {
				c = decode(t, tt.json)
			}
			err := c.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			requireFieldError(t, err, tt.field, tt.value, tt.want)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
	t.Run("a changed field is quoted as it is now", func(t *testing.T) {
		c := decode(t, `{"memory":"64m"}`)
		c.Memory = 1 << 20
		requireFieldError(t, c.Validate(), "memory.memory", "1MiB", "at least 6MiB")
	})
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // each is in one warning, in order
	}{
		{"none", `{"memory":"64m","memoryReservation":"32m"}`, nil},
		{"kernelMemory", `{"memory":"64m","kernelMemory":"32m"}`,
			[]string{`memory.kernelMemory is ignored`}},
		{"kernelMemory quoted", `{"kernelMemory":"32Mi"}`,
			[]string{`"32Mi" kernel memory limit`}},
		{"reservation equal to memory", `{"memory":"64m","memoryReservation":"64Mi"}`,
			[]string{`memory.memoryReservation "64Mi" has no effect`}},
		{"both", `{"memory":"64m","memoryReservation":"64m","kernelMemory":"8m"}`,
			[]string{"kernelMemory is ignored", "memoryReservation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decode(t, tt.json).Warnings()
			require.Len(t, got, len(tt.want), strings.Join(got, "\n"))
			for i, w := range tt.want {
				assert.Contains(t, got[i], w)
			}
		})
	}
	assert.Contains(t, decode(t, `{"kernelMemory":"32m"}`).Warnings()[0], "API 1.42")
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want Limits
	}{
		{"nothing", Config{}, Limits{}},
		{"memory alone gets no swap", Config{Memory: 64 << 20}, Limits{Memory: 64 << 20, MemorySwap: 64 << 20}},
		{"swap asked", Config{Memory: 64 << 20, MemorySwap: 128 << 20}, Limits{Memory: 64 << 20, MemorySwap: 128 << 20}},
		{"unlimited swap", Config{Memory: 64 << 20, MemorySwap: Unlimited}, Limits{Memory: 64 << 20, MemorySwap: -1}},
		{"reservation alone", Config{MemoryReservation: 64 << 20}, Limits{MemoryReservation: 64 << 20}},
		{"kernel memory is passed on", Config{Memory: 64 << 20, KernelMemory: 8 << 20}, Limits{Memory: 64 << 20, MemorySwap: 64 << 20, KernelMemory: 8 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.c.Limits())
		})
	}
	t.Run("the pointers are copies", func(t *testing.T) {
		c := Config{Memory: 64 << 20, MemorySwappiness: ptr(int64(10)), OOMKillDisable: ptr(true)}
		l := c.Limits()
		*l.MemorySwappiness, *l.OOMKillDisable = 90, false
		assert.Equal(t, int64(10), *c.MemorySwappiness)
		assert.True(t, *c.OOMKillDisable)
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512Mb", "0.5GB", "512000KB", "2Gi", "100Ki", "-1", "-5m", "1e3k", "0.1", "4096PiB", "9999999999t", " 64 MiB ", "0x1p4m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			return
		}
		if v < 0 && !(v == Unlimited && strings.TrimSpace(s) == "-1") {
			t.Fatalf("%q gave %d", s, v)
		}
		if v > MaxSize {
			t.Fatalf("%q gave %d, above the max", s, v)
		}
		again, err := ParseSize(v.String())
		if err != nil || again != v {
			t.Fatalf("%q -> %s -> %d, %v", s, v, again, err)
		}
		out, err := json.Marshal(v)
		require.NoError(t, err)
		var back Size
		if err := json.Unmarshal(out, &back); err != nil || back != v {
			t.Fatalf("%q -> %s -> %d, %v", s, out, back, err)
		}
		// Read from a memory block, the value keeps its spelling.
		block, err := json.Marshal(map[string]string{"memorySwap": s})
		require.NoError(t, err)
		var c Config
		require.NoError(t, json.Unmarshal(block, &c))
		if v != 0 && c.text(swapField) != s {
			t.Fatalf("%q is quoted as %q", s, c.text(swapField))
		}
	})
}

func BenchmarkParseSize(b *testing.B) {
	for _, s := range []string{"512Mb", "2Gi", "0.5GB"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseSize(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
