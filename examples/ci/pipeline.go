package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Pipeline is a CI pipeline file: stages run in order, the steps of a stage
// at the same time.
type Pipeline struct {
	// Image is the default image of the steps.
	Image string `yaml:"image"`
	// Stages name the stages in the order they run.
	Stages []string `yaml:"stages"`
	// Variables are environment variables of every step.
	Variables map[string]string `yaml:"variables"`
	// Cache names a directory kept between pipeline runs, which every step
	// finds at /cache/<name> (CI_CACHE_DIR). Empty means none.
	Cache string `yaml:"cache"`
	Steps []Step `yaml:"steps"`
}

// Step is one step of a stage.
type Step struct {
	Name   string            `yaml:"name"`
	Stage  string            `yaml:"stage"`
	Image  string            `yaml:"image"`
	Script []string          `yaml:"script"`
	Env    map[string]string `yaml:"env"`
	// Secrets name environment variables of the CI runner that the step
	// gets as secrets, masked in its log.
	Secrets []string `yaml:"secrets"`
	// Artifacts are globs of files of the checkout kept after the step.
	Artifacts []string `yaml:"artifacts"`
	// Timeout bounds the step ("10m", "PT10M"); empty means none.
	Timeout string `yaml:"timeout"`
}

// ReadPipeline reads and checks a pipeline file. Unknown properties are
// errors.
func ReadPipeline(path string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Pipeline
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", path, err)
	}
	if len(p.Stages) == 0 {
		return nil, fmt.Errorf("pipeline %s: stages: none", path)
	}
	names := map[string]bool{}
	for i, s := range p.Steps {
		where := fmt.Sprintf("pipeline %s: steps[%d]", path, i)
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("%s.name is empty", where)
		case names[s.Name]:
			return nil, fmt.Errorf("%s.name %q: used twice", where, s.Name)
		case !slices.Contains(p.Stages, s.Stage):
			return nil, fmt.Errorf("%s (%s).stage %q: not one of the stages %v", where, s.Name, s.Stage, p.Stages)
		case s.Image == "" && p.Image == "":
			return nil, fmt.Errorf("%s (%s).image is empty, and so is the pipeline's image", where, s.Name)
		case len(s.Script) == 0:
			return nil, fmt.Errorf("%s (%s).script is empty", where, s.Name)
		}
		names[s.Name] = true
	}
	return &p, nil
}
