// Package template renders the templated string fields of a task (its
// commands, before commands, env values, output globs and the input files
// that are templates) with pongo2, the Go implementation of the Django and
// Jinja syntax that Kestra's Pebble also follows: {{ workingDir }},
// {{ outputDir }}, {{ inputs.file }}. A task can turn rendering off
// (runner.Task.DisableTemplates).
//
// # Nothing is escaped
//
// What a template renders goes to a shell, not to a web page: pongo2's HTML
// autoescaping is off for every field, so a value a&b<c>"d'e renders as it
// is. Quoting for the shell is the template's job: a value that may hold
// quotes is best passed through an env value ("$X") or a quoted
// here-document (<<'END').
//
// # Strict names
//
// pongo2 renders an undefined variable, and a call of an undefined
// function, as an empty string. For a script that is dangerous: a typo in
// rm -rf {{ workDir }}/ would remove /. Render therefore walks the parsed
// template and fails, before anything runs, on every variable a template
// uses that is not defined (down to nested keys of maps) and on every call
// of a function that is not defined, with an error that names it; pongo2
// itself refuses unknown filters and tags. Variables bound inside the
// template ({% for %}, {% with %}, {% set %}) are not checked, and neither
// is an expression that supplies its own fallback with the default or
// default_if_none filter. Conditions in {% if %} may name undefined
// variables, which are false there, as in Django; not undefined functions.
// Subscripts written as literals are checked the same way: a missing key
// (outputs.t1.outputFiles['b.csv']) or an index past the end of a list
// (l[5]) is an error. Computed subscripts (m[k]) and the dotted index form
// (l.5) are left to pongo2, which renders them empty when they miss.
//
// # Functions and filters
//
// secret('NAME') returns the task's secret NAME (Options.Secrets, from
// Task.Secrets); a name that is not a secret is an error that names it,
// never a value. The value is masked like every secret in what the runner
// hands back. A variable named secret hides the function.
//
// The json filter (also spelled toJson, Kestra's name) writes a value as
// compact JSON: {{ outputs.step.list|json }}. It and toJson are registered
// in pongo2's filter table, which is global to the program, by the first
// render; a program that registered filters of those names first keeps
// its own, and templates that use them fail with an error saying so.
//
// # Numbers and booleans
//
// Integers (int, int64, ...) render as written, and so does a json.Number
// (its exact text, beyond the range of int64 too). A float64 renders in the
// shortest form that reads back to the same value, as encoding/json and
// JavaScript write it: 1.5, 2, 1e+21, 1e-7 (pongo2 would write 1.500000;
// Pebble writes 2.0 for a whole double, which a float64 cannot tell from
// 2). This holds in nested maps and lists of Vars (map[string]any, []any)
// reached with dots, for floats the template computes ({{ x * 2 }}), and in
// the json filter. Booleans of Vars render true and false, as in JSON and
// Pebble (pongo2 would write True). A map or list rendered as it is prints
// in Go's form; write {{ x|json }} for JSON.
//
// # Pebble syntax
//
// Kestra flows are written for Pebble. What lading does with its syntax:
//
//	Pebble                            lading
//	{{ inputs.x }}                    supported (Vars["inputs"]["x"])
//	{{ outputs.task.value }}          supported when the host program puts
//	                                  the outputs in Vars["outputs"]
//	{{ a ~ b }}                       error: write {{ a + b }} (strings
//	                                  concatenate; two numbers add)
//	{{ x | default('y') }}            error: write {{ x|default:'y' }}
//	                                  (filter arguments follow a colon)
//	{{ x ?? 'y' }}                    error: write {{ x|default:'y' }}
//	{{ x is defined }}                error: write {% if x %} or default
//	{{ x | json }}, {{ x | toJson }}  supported (compact JSON)
//	{{ secret('NAME') }}              supported (Task.Secrets)
//	{{ now() }}                       error: pass the time in Vars, or use
//	                                  $(date) in the script
//	{{ read('f') }}, {{ kv('k') }}    error: not offered (the error says
//	                                  what to do instead)
//	{% raw %}...{% endraw %}          error: write {% verbatim %}...
//	                                  {% endverbatim %}
//	{% for x in list %}, {% if %},
//	{% set x = 1 %}                   supported
//	{% macro %}, {% include %} ...    refused (see Sandbox)
//
// # Shell syntax
//
// The shell's ${#name} (a string's length) stays as written, although {#
// opens a template comment. Any other literal {{, {% or {# is written
// {{ "{{" }} or inside {% verbatim %}...{% endverbatim %}; a task whose
// strings are not templates at all (a CI script with docker inspect
// --format "{{ .State.Status }}") sets runner.Task.DisableTemplates
// instead.
//
// # Sandbox and budget
//
// Templates come from workflow authors, not from the host program. The
// tags that read files (include, import, extends, ssi) are refused, and so
// are lorem, which exists to generate text, and the tags that render into
// buffers of their own (macro, which can also recurse, filter, ifchanged,
// spaceless, block).
//
// A render is bounded in size and time. One rendered string may hold at
// most [MaxSize] bytes (1 MiB; [Options].MaxSize changes it), and so may
// every value computed on the way (a {% set %} that doubles a string in a
// loop stops there); split and make_list may make lists of at most
// MaxSize/16 items, and the width arguments of rjust, ljust, center,
// stringformat and floatformat are capped at MaxSize. Over the cap, the
// render fails with an error that names the field. Every expression
// checks the context, so a loop stops promptly once it is done; the error
// then wraps context.Cause(ctx). Brackets may nest 64 levels deep in one
// tag, and blocks ({% if %}, {% for %}, ...) 64 levels deep (pongo2's parser
// recurses once per level); a template with markup may be at most MaxSize
// bytes long ([Options].MaxTemplateSize changes that alone).
//
// Input files that are templates are rendered with [FileOptions]: the file
// may be up to [MaxFileSize] (8 MiB) once rendered, its template text up to
// MaxSize when it holds markup, and without markup any size (it is not
// parsed).
//
// pongo2 has no hooks for this: lading walks the template pongo2 parsed
// and wraps each expression and filter call in a check (writing pongo2's
// unexported fields through reflect, in the tree it owns for that render).
//
// # Example
//
//	r := template.New(map[string]any{
//		"workingDir": "/work",
//		"inputs":     map[string]any{"name": "data"},
//	}, template.Options{})
//	out, err := r.Render(ctx, "commands[0]", "cat {{ workingDir }}/{{ inputs.name }}.txt")
//	// out == "cat /work/data.txt"
package template
