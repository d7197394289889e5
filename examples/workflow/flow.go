package main

import (
	"bytes"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// Task types, as Kestra names them. A task without a type runs commands.
const (
	typeCommands = "io.kestra.plugin.scripts.shell.Commands"
	typeParallel = "io.kestra.plugin.core.flow.Parallel"
)

// Flow is a Kestra-style flow: tasks run in order; a Parallel task runs its
// own tasks at the same time.
type Flow struct {
	ID        string `yaml:"id"`
	Namespace string `yaml:"namespace"`
	Tasks     []Task `yaml:"tasks"`
}

// Task is one task of a flow, with Kestra's property names.
type Task struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"`

	// Script tasks.
	ContainerImage string            `yaml:"containerImage"`
	TaskRunner     map[string]any    `yaml:"taskRunner"`
	BeforeCommands []string          `yaml:"beforeCommands"`
	Commands       []string          `yaml:"commands"`
	Env            map[string]string `yaml:"env"`
	InputFiles     map[string]string `yaml:"inputFiles"`
	OutputFiles    []string          `yaml:"outputFiles"`
	Timeout        string            `yaml:"timeout"`
	AllowFailure   bool              `yaml:"allowFailure"`

	// Parallel tasks.
	Tasks []Task `yaml:"tasks"`
}

// ReadFlow reads and checks a flow file. Unknown properties are errors.
func ReadFlow(path string) (*Flow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f Flow
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("flow %s: %w", path, err)
	}
	if f.ID == "" {
		return nil, fmt.Errorf("flow %s: id is empty", path)
	}
	seen := map[string]bool{}
	if err := check(f.Tasks, "tasks", seen); err != nil {
		return nil, fmt.Errorf("flow %s: %w", path, err)
	}
	return &f, nil
}

func check(tasks []Task, at string, seen map[string]bool) error {
	if len(tasks) == 0 {
		return fmt.Errorf("%s: no tasks", at)
	}
	for i, t := range tasks {
		where := fmt.Sprintf("%s[%d]", at, i)
		switch {
		case t.ID == "":
			return fmt.Errorf("%s.id is empty", where)
		case seen[t.ID]:
			return fmt.Errorf("%s.id %q: used twice", where, t.ID)
		}
		seen[t.ID] = true
		switch t.Type {
		case typeParallel:
			if err := check(t.Tasks, where+".tasks", seen); err != nil {
				return err
			}
		case "", typeCommands:
			if t.ContainerImage == "" {
				return fmt.Errorf("%s (%s).containerImage is empty", where, t.ID)
			}
			if len(t.Tasks) > 0 {
				return fmt.Errorf("%s (%s).tasks: only a Parallel task has tasks", where, t.ID)
			}
		default:
			return fmt.Errorf("%s (%s).type %q: must be %s or %s", where, t.ID, t.Type, typeCommands, typeParallel)
		}
	}
	return nil
}
