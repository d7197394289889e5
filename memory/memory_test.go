package memory

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"512MB": 512 << 20, "512Mb": 512 << 20, "512mb": 512 << 20, "512m": 512 << 20,
		"512000KB": 512000 << 10, "0.5GB": 536870912, "64m": 64 << 20, "2g": 2 << 30,
		"512Mi": 512 << 20, "2Gi": 2 << 30, "100Ki": 100 << 10, "1Ti": 1 << 40, "1024": 1024, "-1": Unlimited, "64 MiB": 64 << 20,
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseSize(in)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
	for _, bad := range []string{"", "lots", "-5m", "5x", "5mbb", "9999999999t"} {
		t.Run("bad "+bad, func(t *testing.T) {
			_, err := ParseSize(bad)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "2Gi")
		})
	}
}

func TestKestraBlock(t *testing.T) {
	var c Config
	require.NoError(t, json.Unmarshal([]byte(`{"memory":"512Mb","memorySwap":"1Gi","memorySwappiness":"60","memoryReservation":"256m","oomKillDisable":"true","kernelMemory":"64m"}`), &c))
	require.NoError(t, c.Validate())
	l := c.Limits()
	assert.Equal(t, int64(512<<20), l.Memory)
	assert.Equal(t, int64(1<<30), l.MemorySwap)
	assert.Equal(t, int64(256<<20), l.MemoryReservation)
	assert.Equal(t, int64(60), *l.MemorySwappiness)
	assert.True(t, *l.OOMKillDisable)
	assert.Len(t, c.Warnings(), 1)
	assert.Contains(t, c.Warnings()[0], "kernelMemory")

	var numeric Config
	require.NoError(t, json.Unmarshal([]byte(`{"memory":67108864,"memorySwappiness":0,"oomKillDisable":false}`), &numeric))
	assert.Equal(t, Size(64<<20), numeric.Memory)
	assert.Equal(t, int64(64<<20), numeric.Limits().MemorySwap, "no swap unless asked")
}

func TestErrorsNameFieldAndValue(t *testing.T) {
	tests := []struct{ json, field, value string }{
		{`{"memory":"lots"}`, "memory.memory", "lots"},
		{`{"memory":"5m"}`, "memory.memory", "5242880"},
		{`{"memory":"64m","memoryReservation":"64m"}`, "memory.memoryReservation", "67108864"},
		{`{"memory":"64m","memorySwap":"32m"}`, "memory.memorySwap", "33554432"},
		{`{"memorySwap":"1g"}`, "memory.memorySwap", "1073741824"},
		{`{"memory":"64m","memorySwappiness":101}`, "memory.memorySwappiness", "101"},
		{`{"memory":"64m","memorySwappiness":"often"}`, "memory.memorySwappiness", "often"},
		{`{"oomKillDisable":true}`, "memory.oomKillDisable", "true"},
		{`{"oomKillDisable":"maybe"}`, "memory.oomKillDisable", "maybe"},
		{`{"kernelMemory":"1m"}`, "memory.kernelMemory", "1048576"},
		{`{"memroy":"64m"}`, "memory.memroy", "64m"},
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			var c Config
			err := json.Unmarshal([]byte(tt.json), &c)
			if err == nil {
				err = c.Validate()
			}
			require.ErrorIs(t, err, runner.ErrInvalidConfig)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			assert.Equal(t, tt.value, fe.Value)
		})
	}
	var ok Config
	require.NoError(t, json.Unmarshal([]byte(`{"memory":"64m","memorySwap":"-1"}`), &ok))
	require.NoError(t, ok.Validate(), "-1 is unlimited swap")
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512Mb", "0.5GB", "2Gi", "-1", "1e3k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < -1 {
			t.Fatalf("%q gave %d", s, v)
		}
		again, err := ParseSize(v.String())
		if err != nil || again != v {
			t.Fatalf("%q -> %s -> %v, %v", s, v, again, err)
		}
	})
}
