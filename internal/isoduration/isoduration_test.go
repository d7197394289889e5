package isoduration

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"5s", 5 * time.Second},
		{"1m30s", 90 * time.Second},
		{"PT5S", 5 * time.Second},
		{"pt5s", 5 * time.Second},
		{"PT0S", 0},
		{"PT1M30S", 90 * time.Second},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT1,25S", 1250 * time.Millisecond},
		{"PT0.000000001S", time.Nanosecond},
		{"PT2H", 2 * time.Hour},
		{"P1DT1H", 25 * time.Hour},
		{"P2D", 48 * time.Hour},
		{"-PT1S", -time.Second},
		{"PT-0.5S", -500 * time.Millisecond},
		{"PT-6H3M", -6*time.Hour + 3*time.Minute},
		{"P106751DT23H47M16.854775807S", time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{"", "P", "PT", "5", "PT5", "P1S", "five seconds", "P1DT", "P1W", "P1Y"} {
		t.Run("syntax "+bad, func(t *testing.T) {
			_, err := Parse(bad)
			require.ErrorIs(t, err, ErrSyntax)
			assert.Contains(t, err.Error(), "PT5S", "the error shows an accepted form")
		})
	}
	// These wrapped around before: P213504D read as 25m26s, P999999999D as
	// a negative duration.
	for _, big := range []string{"P213504D", "P999999999D", "PT9999999999999H", "P106751DT23H47M16.854775808S", "PT99999999999999999999S"} {
		t.Run("range "+big, func(t *testing.T) {
			_, err := Parse(big)
			require.ErrorIs(t, err, ErrRange)
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"PT5S", "P1DT2H3M4.5S", "-PT-1S", "P213504D", "1h2m", "PT0,1S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("Parse(%q): error %v matches neither sentinel", s, err)
			}
			return
		}
		// A parsed ISO duration printed back in Go's form parses to itself.
		back, err := time.ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("Parse(%q) = %v, which does not round-trip (%v, %v)", s, d, back, err)
		}
	})
}
