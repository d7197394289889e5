// Package suggest finds the known name closest to a misspelt one, for the
// "did you mean" of configuration errors.
package suggest

import (
	"strings"
	"unicode/utf8"
)

// Nearest returns the name among known closest to name, or "" when none is
// close: the same name in another case, or one within a few edits (a
// third of the name's length, at least two). Ties go to the earlier name in
// known.
func Nearest(name string, known []string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", -1
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
		d := distance(lower, strings.ToLower(k))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 || bestDist > max(2, utf8.RuneCountInString(name)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
