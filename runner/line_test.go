package runner

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLineKinds(t *testing.T) {
	for _, tt := range []struct {
		kind   LineKind
		name   string
		logged bool
	}{
		{LineText, "text", true},
		{LineProtocol, "protocol", false},
		{LineLog, "log", true},
		{LineMarker, "marker", false},
		{LineKind(9), "LineKind(9)", false},
	} {
		assert.Equal(t, tt.name, tt.kind.String())
		assert.Equal(t, tt.logged, Line{Kind: tt.kind}.Logged(), tt.name)
	}
	assert.Equal(t, slog.LevelInfo, Line{}.Level, "the zero Line is INFO text")
	assert.True(t, LevelTrace < slog.LevelDebug)
	assert.Equal(t, "DEBUG-4", LevelTrace.String())
}
