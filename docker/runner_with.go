package docker

import (
	"fmt"
)

// With returns a Runner with cfg's settings that shares r's connection to
// the engine and r's concurrency limit: a workflow engine whose tasks each
// carry their own taskRunner block (user, cpu, memory, ...) makes one Runner
// with [New] and one With per block, and all their runs together are held
// to the root's [Config.MaxConcurrency]. A Runner from With can make more
// the same way; they all share the first one's connection and limit.
//
// cfg is validated as [New] validates it and used as given: nothing of r's
// Config is carried over but the connection and the limit, so start from a
// copy of r's Config to keep its other settings ([Config.UnmarshalJSON]
// decodes a block onto it, keeping what the block leaves out).
// cfg.Host must be empty or r's, and cfg.MaxConcurrency zero or r's: any
// other value is an error matching [runner.ErrInvalidConfig], as the
// connection and the limit are r's.
//
// Close on the returned Runner does nothing: the connection closes with the
// Runner New returned, and the runs in progress on every Runner made from it
// fail then. With is safe for concurrent use, as are the Runners it returns.
func (r *Runner) With(cfg Config) (*Runner, error) {
	if cfg.Host != "" && cfg.Host != r.cfg.Host {
		return nil, invalidConfig("host", cfg.Host, fmt.Sprintf("must be empty or %q: a Runner from With uses the connection of the Runner it was made from", r.cfg.Host))
	}
	if cfg.MaxConcurrency != 0 && cfg.MaxConcurrency != r.cfg.MaxConcurrency {
		return nil, invalidConfig("maxConcurrency", fmt.Sprint(cfg.MaxConcurrency), fmt.Sprintf("must be 0 or %d: a Runner from With shares the concurrency limit of the Runner it was made from", r.cfg.MaxConcurrency))
	}
	cfg.Host, cfg.MaxConcurrency = r.cfg.Host, r.cfg.MaxConcurrency
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := newRunner(cfg, r.cli, r.slots, r.cpus)
	d.derived = true
	return d, nil
}
