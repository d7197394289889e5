package runnertest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// outputsMoreCases: the types of output values, masking whatever the type,
// lenient metrics and the bounds on outputs and warnings.
func outputsMoreCases() []Case {
	return []Case{
		{"OutputNumbersKeepTheirType", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"outputs":{"n":2,"big":9007199254740993,"huge":123456789012345678901234567890,"f":1.5,"nested":{"a":[1,2.5]}}}::'`)
			assert.Equal(t, map[string]any{
				"n":      int64(2),
				"big":    int64(9007199254740993),
				"huge":   json.Number("123456789012345678901234567890"),
				"f":      1.5,
				"nested": map[string]any{"a": []any{int64(1), 2.5}},
			}, out.Result.Outputs)
		}},
		{"SecretMaskedWhateverItsType", func(t *testing.T, s *Suite) {
			const pin = "84213579"
			out := s.Exec(t, t.Context(), runner.Task{
				Secrets: map[string]string{"PIN": pin},
				Commands: []string{
					`echo '::{"outputs":{"p":'"$PIN"',"list":[1'"$PIN"']}}::'`,
					`echo '::{"metrics":[{"name":"m'"$PIN"'","type":"counter","value":1,"tags":{"t":'"$PIN"'}},{"name":"x","type":"'"$PIN"'","value":1}]}::'`,
				},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, map[string]any{"p": "****", "list": []any{"1****"}}, out.Result.Outputs)
			assert.Equal(t, []runner.Metric{{Name: "m****", Type: "counter", Value: 1, Tags: map[string]string{"t": "****"}}}, out.Result.Metrics)
			assert.NotContains(t, fmt.Sprint(out.Result.Outputs, out.Result.Metrics, out.Result.Warnings), pin)
			assert.NotEmpty(t, out.Result.Warnings, "the metric with an unknown type is noted")
		}},
		{"MetricsReadLeniently", func(t *testing.T, s *Suite) {
			out := s.Script(t, `echo '::{"outputs":{"kept":1},"metrics":[`+
				`{"name":"c","type":"counter","value":"5","tags":{"n":3,"b":true}},`+
				`{"name":"bad","type":"counter","value":"five"},`+
				`{"name":"t","type":"timer","value":"PT1.5S"}]}::'`)
			assert.Equal(t, map[string]any{"kept": int64(1)}, out.Result.Outputs, "outputs are kept beside an unreadable metric")
			assert.Equal(t, []runner.Metric{
				{Name: "c", Type: "counter", Value: 5, Tags: map[string]string{"n": "3", "b": "true"}},
				{Name: "t", Type: "timer", Value: 1.5},
			}, out.Result.Metrics)
			w := about(out.Result.Warnings, "metrics[")
			require.Len(t, w, 1, "%q", out.Result.Warnings)
			assert.Contains(t, w[0], `metrics[1] ("bad")`)
		}},
		{"WarningsFlood", func(t *testing.T, s *Suite) {
			// 16 MiB of lines that are not JSON: 2 Mi warnings if nothing
			// bounded them. Run directly, without recording 2 Mi lines.
			res, err := s.cfg.New(t).Run(t.Context(), runner.Task{Image: s.cfg.Image, Commands: []string{
				`l=$(printf '::{x}::\n%.0s' $(seq 1024)); for i in $(seq 2048); do printf '%s\n' "$l"; done`,
			}})
			require.NoError(t, err)
			require.NotNil(t, res)
			assert.Equal(t, 2048*1024, res.StdoutLines)
			require.Less(t, len(res.Warnings), 110, "warnings are bounded")
			assert.Len(t, about(res.Warnings, "stdout: "), 100, "100 warnings are kept")
			assert.Contains(t, res.Warnings, fmt.Sprintf("%d more warnings about ::{...}:: lines not shown", 2048*1024-100), "then their count")
		}},
		{"OutputKeysFlood", func(t *testing.T, s *Suite) {
			// A million distinct keys: outputs stop at 10,000 keys, with a
			// warning naming the first key left out, and every line still
			// counts. Run directly, without recording a million lines.
			res, err := s.cfg.New(t).Run(t.Context(), runner.Task{Image: s.cfg.Image, Commands: []string{
				`printf '::{"outputs":{"k%s":1}}::\n' $(seq 1000000)`,
			}})
			require.NoError(t, err)
			require.NotNil(t, res)
			assert.Equal(t, 1000000, res.StdoutLines)
			require.Len(t, res.Outputs, 10000, "outputs are bounded")
			assert.Contains(t, res.Outputs, "k10000")
			w := about(res.Warnings, "outputs")
			require.Len(t, w, 2, "%q", res.Warnings)
			assert.Equal(t, `stdout: outputs reached their limit of 10000 keys at key "k10001": it and every output after it are dropped`, w[0])
			assert.Equal(t, "990000 output values dropped in all by the outputs limit", w[1])
		}},
		{"OutputsBytesLimit", func(t *testing.T, s *Suite) {
			// 2,000 values of 1 KiB: outputs stop at 1 MiB.
			out := s.Script(t,
				`v=$(head -c 1024 /dev/zero | tr '\0' v); for i in $(seq 2000); do echo '::{"outputs":{"k'$i'":"'$v'"}}::'; done`,
				`echo '::{"outputs":{"k1":"late"}}::'`)
			assert.Equal(t, 2001, out.Result.StdoutLines)
			assert.Len(t, out.Texts(runner.Stdout), 2001, "every line is passed on")
			encoded, err := json.Marshal(out.Result.Outputs)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(encoded), 1<<20)
			kept := len(out.Result.Outputs)
			assert.Greater(t, kept, 1000, "outputs up to the limit are kept")
			assert.Len(t, out.Result.Outputs["k1"], 1024, "a kept key is not replaced past the limit")
			w := about(out.Result.Warnings, "outputs")
			require.Len(t, w, 2, "%q", out.Result.Warnings)
			assert.Equal(t, fmt.Sprintf(`stdout: outputs reached their limit of 1 MiB at key "k%d": it and every output after it are dropped`, kept+1), w[0])
			assert.Equal(t, fmt.Sprintf("%d output values dropped in all by the outputs limit", 2000-kept+1), w[1])
		}},
	}
}

// about returns the warnings that contain substr.
func about(warnings []string, substr string) []string {
	var out []string
	for _, w := range warnings {
		if strings.Contains(w, substr) {
			out = append(out, w)
		}
	}
	return out
}
