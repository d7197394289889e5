package core_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
)

// TestPlanCopies: a directory whose changed entries are all wanted is
// copied whole, one with an unwanted entry is split, and past MaxCopies
// the roots that share a parent are merged into it.
func TestPlanCopies(t *testing.T) {
	m, err := files.NewMatcher([]string{"**/*.txt"})
	require.NoError(t, err)
	many := map[string]bool{"d/skip.log": true}
	for i := range core.MaxCopies + 2 {
		many[fmt.Sprintf("d/s%d/x.txt", i)] = true
	}
	for _, tt := range []struct {
		name    string
		changed map[string]bool
		want    []string
	}{
		{"all wanted", map[string]bool{"a/x.txt": true, "b.txt": true}, []string{""}},
		{"nothing wanted", map[string]bool{"a/y.log": true}, nil},
		{"split", map[string]bool{"a/x.txt": true, "a/y.log": true, "b/z.txt": true}, []string{"a/x.txt", "b"}},
		{"merged past MaxCopies", many, []string{"d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, core.PlanCopies(tt.changed, m))
		})
	}
}

// TestStopWhenDone: a copy ends once every wanted path under its root has
// gone by, not before.
func TestStopWhenDone(t *testing.T) {
	want := map[string]bool{"a/x.txt": true, "a/y.txt": true, "b/z.txt": true}
	stop := core.StopWhenDone("a", want)
	assert.False(t, stop("a/x.txt"))
	assert.False(t, stop("a/other"))
	assert.False(t, stop("a/y.txt"))
	assert.True(t, stop("a/later"))
}
