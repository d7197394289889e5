package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// LabelCI marks the containers and volumes of this CI runner, so that the
// start-up Prune sweeps only its own leftovers.
const LabelCI = "example.ci.runner"

// CI runs pipelines. Create it with [New]; Close it when done.
type CI struct {
	r      *docker.Runner
	name   string
	dir    string
	secret func(string) (string, bool)
	out    io.Writer
	outMu  sync.Mutex
}

// Options configure a CI runner.
type Options struct {
	// Dir holds the checkouts (Dir/<run>/checkout), artifacts
	// (Dir/<run>/artifacts) and caches (Dir/cache/<name>).
	Dir string
	// Name is the value of LabelCI on what this runner creates; its Prune
	// sweeps only that. Empty means "default".
	Name string
	// Secret looks up a secret by name; nil means os.LookupEnv.
	Secret func(name string) (string, bool)
	// Out receives the live log of every step, prefixed with its stage and
	// name; nil means io.Discard.
	Out io.Writer
	// Delete false keeps the containers (to show what Prune sweeps).
	Delete *bool
}

// New returns a CI runner. It removes what an earlier runner of the same
// name left on the engine (a crash, a kill -9) before returning.
func New(ctx context.Context, o Options) (*CI, docker.PruneResult, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if o.Secret == nil {
		o.Secret = os.LookupEnv
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	cache := filepath.Join(o.Dir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, docker.PruneResult{}, err
	}
	r, err := docker.New(docker.Config{
		FileHandlingStrategy: docker.FileHandlingMount,
		Container:            docker.Container{Labels: map[string]string{LabelCI: o.Name}, Volumes: []string{cache + ":/cache"}},
		Lifecycle:            docker.Lifecycle{Delete: o.Delete},
	}, docker.WithAllow(docker.Allow{Volumes: true}))
	if err != nil {
		return nil, docker.PruneResult{}, err
	}
	pruned, err := r.Prune(ctx, docker.PruneOptions{Labels: map[string]string{LabelCI: o.Name}})
	if err != nil {
		_ = r.Close()
		return nil, pruned, fmt.Errorf("prune: %w", err)
	}
	return &CI{r: r, name: o.Name, dir: o.Dir, secret: o.Secret, out: o.Out}, pruned, nil
}

// Close releases the engine connection.
func (c *CI) Close() error { return c.r.Close() }

// Step states.
const (
	Passed    = "passed"
	Failed    = "failed"
	Cancelled = "cancelled" // stopped because another step of its stage failed, or Ctrl-C
	Skipped   = "skipped"   // an earlier stage failed
)

// StepResult is what a step did.
type StepResult struct {
	Name, Stage string
	State       string
	ExitCode    int
	Err         error
	Duration    time.Duration
	// Artifacts map the files the step's globs matched to their copies
	// under the run's artifacts directory.
	Artifacts map[string]string
}

// Report is what a pipeline run did.
type Report struct {
	State     string // passed, failed or cancelled
	Checkout  string
	Artifacts string
	Steps     []*StepResult
}

// Step returns the result of the step name, or nil.
func (r *Report) Step(name string) *StepResult {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Run checks out src once, runs the pipeline's stages in order and the
// steps of a stage in parallel on that checkout, and copies each step's
// artifacts out. When a step fails, the other steps of its stage are
// cancelled and the later stages skipped. When ctx is cancelled (Ctrl-C),
// the running steps are stopped and their containers removed before Run
// returns.
func (c *CI) Run(ctx context.Context, p *Pipeline, src, runID string) (*Report, error) {
	// Secrets are looked up before anything runs: a missing one fails the
	// pipeline, not a step half-way.
	secrets := map[string]map[string]string{}
	for _, s := range p.Steps {
		secrets[s.Name] = map[string]string{}
		for _, name := range s.Secrets {
			v, ok := c.secret(name)
			if !ok {
				return nil, fmt.Errorf("step %s: secret %s is not set", s.Name, name)
			}
			secrets[s.Name][name] = v
		}
	}
	for _, s := range p.Steps {
		if s.Timeout != "" {
			if _, err := docker.ParseDuration(s.Timeout); err != nil {
				return nil, fmt.Errorf("step %s: timeout %q: %w", s.Name, s.Timeout, err)
			}
		}
	}
	rep := &Report{
		State:     Passed,
		Checkout:  filepath.Join(c.dir, runID, "checkout"),
		Artifacts: filepath.Join(c.dir, runID, "artifacts"),
	}
	if err := os.CopyFS(rep.Checkout, os.DirFS(src)); err != nil {
		return nil, fmt.Errorf("checkout: %w", err)
	}
	cacheDir := ""
	if p.Cache != "" {
		name := filepath.Base(filepath.Clean("/" + p.Cache))
		if err := os.MkdirAll(filepath.Join(c.dir, "cache", name), 0o755); err != nil {
			return nil, err
		}
		cacheDir = "/cache/" + name
	}
	for _, stage := range p.Stages {
		var steps []*StepResult
		var defs []Step
		for _, s := range p.Steps {
			if s.Stage == stage {
				sr := &StepResult{Name: s.Name, Stage: stage}
				rep.Steps = append(rep.Steps, sr)
				steps, defs = append(steps, sr), append(defs, s)
			}
		}
		if rep.State != Passed {
			for _, sr := range steps {
				sr.State = Skipped
			}
			continue
		}
		stageCtx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		for i, s := range defs {
			wg.Go(func() {
				c.step(stageCtx, ctx, p, s, secrets[s.Name], cacheDir, runID, rep, steps[i])
				if steps[i].State == Failed {
					cancel(fmt.Errorf("step %s failed", s.Name))
				}
			})
		}
		wg.Wait()
		cancel(nil)
		for _, sr := range steps {
			switch {
			case sr.State == Failed:
				rep.State = Failed
			case sr.State == Cancelled && rep.State == Passed && ctx.Err() != nil:
				rep.State = Cancelled
			}
		}
	}
	return rep, nil
}

func (c *CI) step(ctx, parent context.Context, p *Pipeline, s Step, secrets map[string]string, cacheDir string, runID string, rep *Report, sr *StepResult) {
	image := s.Image
	if image == "" {
		image = p.Image
	}
	env := maps.Clone(p.Variables)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, s.Env)
	env["CI"], env["CI_PIPELINE_ID"], env["CI_STAGE"], env["CI_STEP"] = "true", runID, s.Stage, s.Name
	if cacheDir != "" {
		env["CI_CACHE_DIR"] = cacheDir
	}
	var timeout time.Duration
	if s.Timeout != "" {
		timeout, _ = docker.ParseDuration(s.Timeout) // checked in Run
	}
	prefix := s.Stage + "/" + s.Name
	start := time.Now()
	res, err := c.r.Run(ctx, runner.Task{
		ID:          runID + "." + s.Name,
		Image:       image,
		Commands:    s.Script,
		Env:         env,
		Secrets:     secrets,
		WorkingDir:  rep.Checkout,
		OutputFiles: s.Artifacts,
		// The steps share the checkout and name their artifacts by glob;
		// without this, each run would leave an empty outputs-<id>
		// directory in it.
		DisableOutputDir: true,
		// A CI script is shell, not a template: its own braces
		// (docker inspect --format "{{ .State.Status }}") stay as written.
		DisableTemplates: true,
		Timeout:          timeout,
		OnLine: func(l runner.Line) {
			c.outMu.Lock()
			defer c.outMu.Unlock()
			fmt.Fprintf(c.out, "[%s] %s\n", prefix, l.Text)
		},
	})
	sr.Duration = time.Since(start)
	var exit *runner.ExitError
	switch {
	case err == nil:
		sr.State = Passed
	case errors.As(err, &exit):
		sr.State, sr.ExitCode, sr.Err = Failed, exit.ExitCode, err
	case ctx.Err() != nil: // cancelled: by a failed step of the stage, or Ctrl-C
		sr.State, sr.Err = Cancelled, context.Cause(ctx)
		if parent.Err() != nil {
			sr.Err = context.Cause(parent)
		}
	default:
		sr.State, sr.Err = Failed, err
	}
	if res == nil || sr.State != Passed {
		return
	}
	sr.Artifacts = map[string]string{}
	for name, path := range res.OutputFiles {
		dst := filepath.Join(rep.Artifacts, s.Name, name)
		if err := copyFile(path, dst); err != nil {
			sr.State, sr.Err = Failed, fmt.Errorf("artifact %s: %w", name, err)
			return
		}
		sr.Artifacts[name] = dst
	}
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
