package template_test

import (
	"context"
	"fmt"

	"github.com/lading-dev/lading/template"
)

func Example() {
	r := template.New(map[string]any{
		"workingDir": "/work",
		"inputs":     map[string]any{"name": "data", "ratio": 1.5, "query": `a&b<c>`},
	}, template.Options{Secrets: map[string]string{"TOKEN": "t0k3n"}})
	ctx := context.Background()
	for _, s := range []string{
		"cat {{ workingDir }}/{{ inputs.name }}.txt",
		"echo {{ inputs.ratio }} '{{ inputs.query }}' {{ inputs|json }}",
		"curl -H 'Authorization: {{ secret('TOKEN') }}' x",
		"rm -rf {{ secret('DATA_DIR') }}/",
		"echo {{ now() }}",
	} {
		out, err := r.Render(ctx, "commands[0]", s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(out)
	}
	// Output:
	// cat /work/data.txt
	// echo 1.5 'a&b<c>' {"name":"data","query":"a&b<c>","ratio":1.5}
	// curl -H 'Authorization: t0k3n' x
	// error: invalid task: commands[0] "rm -rf {{ secret('DATA_DIR') }}/": line 1 column 11: secret("DATA_DIR"): not one of the task's secrets (TOKEN)
	// error: invalid task: commands[0] "echo {{ now() }}": undefined function now() (template functions: secret): templates render before the container starts; pass the time in Vars, or let the script ask: $(date -u +%Y-%m-%dT%H:%M:%SZ)
}
