package runner

// TemplateSource is a [Source] whose content is a template, as the
// contents of Kestra's inputFiles are: the runner renders it with the
// task's [Task.Vars], {{ workingDir }}, {{ outputDir }} and secret(), like
// the commands, and stages the result. A runner finds it by type assertion;
// package files makes one with files.Template. Other sources (strings,
// bytes, host files, readers) are never rendered, so data and binary files
// reach the container byte for byte.
//
// An error in the template fails the run before anything starts, as a
// [*FieldError] for "inputFiles.<name>" matching [ErrInvalidTask]. With
// [Task.DisableTemplates] the template text is staged as it is.
type TemplateSource interface {
	Source
	// Template returns the template text.
	Template() string
}
