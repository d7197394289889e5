package docker

import (
	"fmt"
)

// With returns a Runner with cfg's settings that shares r's connection to
// the engine, r's concurrency limit and r's [Option]s (logger, what blocks
// are allowed): a workflow engine whose tasks each carry their own
// taskRunner block (user, cpu, memory, ...) makes one Runner with [New] and
// one With per block, and all their runs together are held to the root's
// [WithMaxConcurrency]. A Runner from With can make more the same way; they
// all share the first one's connection, limit and options.
//
// cfg is validated as [New] validates it, against r's [WithAllow], and used
// as given: nothing of r's Config is carried over but the connection, so
// start from a copy of r's Config to keep its other settings
// ([Config.UnmarshalJSON] decodes a block onto it, keeping what the block
// leaves out). cfg.Host must be empty or r's: any other value is an error
// matching [runner.ErrInvalidConfig], as the connection is r's.
//
// Close and Shutdown on the returned Runner do nothing: the connection
// closes with the Runner New returned, whose Shutdown waits for (and whose
// Close cancels) the runs in progress on every Runner made from it. With
// is safe for concurrent use, as are the Runners it returns.
func (r *Runner) With(cfg Config) (*Runner, error) {
	if cfg.Host != "" && cfg.Host != r.cfg.Host {
		return nil, invalidConfig("host", cfg.Host, fmt.Sprintf("must be empty or %q: a Runner from With uses the connection of the Runner it was made from", r.cfg.Host))
	}
	cfg.Host = r.cfg.Host
	comp, err := cfg.compile(r.opts.allow, r)
	if err != nil {
		return nil, err
	}
	d := newRunner(cfg, comp, r.opts, r.cli, r.limiter, r.cpus, r.runs)
	d.derived = true
	return d, nil
}
