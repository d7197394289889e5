package suggest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNearest(t *testing.T) {
	known := []string{"pullPolicy", "pullTimeout", "platform", "memory", "memorySwap", "networkMode"}
	tests := map[string]string{
		"pullPolicyy": "pullPolicy",
		"pulPolicy":   "pullPolicy",
		"pullpolicy":  "pullPolicy",
		"PULLPOLICY":  "pullPolicy",
		"memorySwapp": "memorySwap",
		"networkmode": "networkMode",
		"netwrokMode": "networkMode",
		"memroy":      "memory",
		"colour":      "",
		"x":           "",
		"":            "",
	}
	for in, want := range tests {
		assert.Equal(t, want, Nearest(in, known), in)
	}
	assert.Equal(t, "", Nearest("a", nil))
}
