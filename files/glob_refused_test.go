package files_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// TestMatcherRefusesPatternsThatCannotMatch: a pattern no file path can
// match is an error naming it, not a silent empty match.
func TestMatcherRefusesPatternsThatCannotMatch(t *testing.T) {
	for _, tt := range []struct{ pattern, problem string }{
		{`regex:.*\.csv`, "regex"},
		{"regex:out/.*", "regex"},
		{"glob:*.txt", `"glob:"`},
		{"out/", "directory"},
		{"out/**/", "directory"},
		{".", "directory"},
		{"a/./b.txt", `"." element`},
		{"a//b.txt", "empty element"},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := files.NewMatcher([]string{"ok.txt", tt.pattern})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "outputFiles", fe.Field)
			assert.Equal(t, tt.pattern, fe.Value)
			assert.Contains(t, fe.Problem, "entry 1")
			assert.Contains(t, fe.Problem, tt.problem)
			assert.Contains(t, err.Error(), strconv.Quote(tt.pattern))
		})
	}
	// Still accepted: a leading "./", names with a colon or a dot.
	for _, p := range []string{"./a.txt", "./out/**", "a:b.txt", ".hidden", "out/.x/*.log", "{a,b}/**"} {
		_, err := files.NewMatcher([]string{p})
		assert.NoError(t, err, p)
	}
}
