package files

import (
	"errors"
	"io"

	"github.com/lading-dev/lading/runner"
)

// errTemplateOpened is what a template source's Open returns: a runner
// renders it ([runner.TemplateSource]) and never opens it, so a runner that
// does not know templates fails instead of staging the unrendered text.
var errTemplateOpened = errors.New("files: a Template source is rendered by the runner (runner.TemplateSource), not opened: this runner does not render input files, or the Template is wrapped in another source (WithMode)")

// Template returns a source whose content is the template text s, as a
// Kestra inputFiles value is: the runner renders it with the task's vars,
// {{ workingDir }}, {{ outputDir }} and secret() before staging it (see
// [runner.TemplateSource] and package template for the syntax and the
// caps: a rendered file may hold up to 8 MiB, a template with markup up to
// 1 MiB). With runner.Task.DisableTemplates, s is staged as it is.
//
// Only a Template source is rendered: [String], [Bytes], [HostFile] and
// [Reader] contents are staged byte for byte, never parsed, so data and
// binary files that happen to hold {{ are safe. That matches Kestra, which
// renders the inline strings of a flow's inputFiles but copies files it
// fetches from storage (kestra:// and nsfile:// URIs) as they are; a host
// program porting Kestra flows passes the inline values as Template and
// the fetched files as HostFile or Reader.
//
// The source can be used any number of times, concurrently. Its Open
// method fails: the runner renders the template instead of opening it. So
// a Template wrapped in another source, such as [WithMode], fails to stage
// (the runner sees the wrapper, not the template); the rendered file is
// staged 0o644.
func Template(s string) Source { return templateSource(s) }

type templateSource string

func (s templateSource) Template() string { return string(s) }

func (s templateSource) Open() (io.ReadCloser, error) { return nil, errTemplateOpened }

var _ runner.TemplateSource = templateSource("")
