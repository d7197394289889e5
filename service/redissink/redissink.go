// Package redissink pushes a service's logs and stats to Redis channels,
// as Zero-OS does: each stdout and stderr line is one PUBLISH to its
// channel, each stats sample one PUBLISH of a JSON object with Zero-OS's
// fields (timestamp, memory_usage, memory_limit, memory_cache, cpu_usage in
// 10 µs units, pids_current). Destinations are URLs
// "redis://[user:password@]host:port/channel" (or "rediss://" for TLS);
// read them with SUBSCRIBE.
//
// # Buffering and drops
//
// A sink never blocks the service, nor the goroutine that reads its logs:
// a Write or a stats sample is queued and returns at once. Each
// destination has a queue of [Config.Buffer] messages (10,000 by default)
// that one goroutine publishes in order. While Redis is down or slow, the
// goroutine retries the message at the head of the queue (every 100 ms up
// to 2 s) and the queue fills: nothing queued is lost while the sink is
// open, and published in order once Redis answers. A message that finds its
// queue full is dropped and counted ([Sink.Dropped]): what is dropped is
// always the newest. [Sink.Close] publishes what is queued for at most its
// ctx's life, then drops the rest (counted too).
//
// Redis pub/sub delivers to the subscribers connected at the time of the
// PUBLISH: a subscriber that connects later misses what was published
// before.
//
// # Example
//
//	sink, err := redissink.New(redissink.Config{
//		Stdout: "redis://127.0.0.1:6379/container-stdout",
//		Stderr: "redis://127.0.0.1:6379/container-stderr",
//		Stats:  "redis://127.0.0.1:6379/container-stats",
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer sink.Close(context.Background())
//	go service.Stream(ctx, svc, sink.Sinks()) // every 2 s a stats sample
package redissink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
)

// DefaultBuffer is the queue length of a destination when Config.Buffer is
// zero.
const DefaultBuffer = 10_000

// ErrInvalidConfig: a destination URL is not a Redis channel URL. The
// error is a [*runner.FieldError] naming the field (the URL's password is
// never shown).
var ErrInvalidConfig = errors.New("invalid redis sink config")

// Config names the destinations; an empty one is not used.
type Config struct {
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Stats  string `json:"stats,omitempty"`
	// StatsPeriod is the period of the stats samples; zero means 2 s.
	StatsPeriod time.Duration `json:"statsPeriod,omitempty"`
	// Buffer is each destination's queue length; zero means
	// [DefaultBuffer].
	Buffer int `json:"buffer,omitempty"`
}

// Sink publishes to the destinations of a Config. It is safe for
// concurrent use; Close it once.
type Sink struct {
	cfg                   Config
	stdout, stderr, stats *destination
	clients               map[string]*redis.Client // by address and credentials
}

// destination is one channel with its queue and publisher.
type destination struct {
	client  *redis.Client
	channel string
	queue   chan string
	dropped atomic.Int64
	done    chan struct{}
	stop    chan struct{} // closed by Close: drop what is left once its ctx ends
	closing atomic.Bool
	mu      sync.RWMutex // held for reading by a send, for writing by Close
}

// New checks cfg, connects lazily (no call is made to Redis before the
// first message) and starts the publishers.
func New(cfg Config) (*Sink, error) {
	if cfg.Buffer < 0 {
		return nil, &runner.FieldError{Field: "buffer", Value: fmt.Sprint(cfg.Buffer), Problem: "must not be negative", Err: ErrInvalidConfig}
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.StatsPeriod < 0 {
		return nil, &runner.FieldError{Field: "statsPeriod", Value: cfg.StatsPeriod.String(), Problem: "must not be negative", Err: ErrInvalidConfig}
	}
	s := &Sink{cfg: cfg, clients: map[string]*redis.Client{}}
	for _, d := range []struct {
		field, url string
		to         **destination
	}{{"stdout", cfg.Stdout, &s.stdout}, {"stderr", cfg.Stderr, &s.stderr}, {"stats", cfg.Stats, &s.stats}} {
		if d.url == "" {
			continue
		}
		dest, err := s.destination(d.field, d.url)
		if err != nil {
			for _, c := range s.clients {
				_ = c.Close()
			}
			return nil, err
		}
		*d.to = dest
	}
	for _, d := range s.all() {
		go d.publish()
	}
	return s, nil
}

func (s *Sink) destination(field, raw string) (*destination, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, &runner.FieldError{Field: field, Value: redact(raw), Problem: "must be redis://host:port/channel", Err: ErrInvalidConfig}
	}
	channel := strings.TrimPrefix(u.Path, "/")
	if channel == "" {
		return nil, &runner.FieldError{Field: field, Value: redact(raw), Problem: "names no channel (redis://host:port/channel)", Err: ErrInvalidConfig}
	}
	server := *u
	server.Path = ""
	key := server.String()
	client := s.clients[key]
	if client == nil {
		opts, err := redis.ParseURL(key)
		if err != nil {
			return nil, &runner.FieldError{Field: field, Value: redact(raw), Problem: "is not a Redis URL", Err: ErrInvalidConfig}
		}
		opts.MaxRetries = -1 // the publisher retries, in order
		opts.DialTimeout = time.Second
		opts.WriteTimeout = 2 * time.Second
		opts.ReadTimeout = 2 * time.Second
		client = redis.NewClient(opts)
		s.clients[key] = client
	}
	return &destination{client: client, channel: channel, queue: make(chan string, s.cfg.Buffer), done: make(chan struct{}), stop: make(chan struct{})}, nil
}

// redact hides a URL's password.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func (s *Sink) all() []*destination {
	var out []*destination
	for _, d := range []*destination{s.stdout, s.stderr, s.stats} {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// send queues msg, or drops and counts it when the queue is full or the
// sink closed.
func (d *destination) send(msg string) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closing.Load() {
		d.dropped.Add(1)
		return
	}
	select {
	case d.queue <- msg:
	default:
		d.dropped.Add(1)
	}
}

// publish publishes the queue in order, retrying a message until Redis
// takes it, until the queue is closed and drained, or stop.
func (d *destination) publish() {
	defer close(d.done)
	for msg := range d.queue {
		select {
		case <-d.stop:
			d.dropped.Add(1 + int64(len(d.queue)))
			for range d.queue {
			}
			return
		default:
		}
		wait := 100 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := d.client.Publish(ctx, d.channel, msg).Err()
			cancel()
			if err == nil {
				break
			}
			select {
			case <-d.stop:
				d.dropped.Add(1 + int64(len(d.queue)))
				for range d.queue {
				}
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 2*time.Second)
		}
	}
}

// Sinks returns the [service.Sinks] that feed this sink, for
// [service.Stream].
func (s *Sink) Sinks() service.Sinks {
	var sinks service.Sinks
	if s.stdout != nil {
		sinks.Stdout = lineWriter{s.stdout}
	}
	if s.stderr != nil {
		sinks.Stderr = lineWriter{s.stderr}
	}
	if s.stats != nil {
		sinks.Stats = s.PublishStats
		sinks.StatsPeriod = s.cfg.StatsPeriod
	}
	return sinks
}

// lineWriter publishes each Write (one line from [service.Service.Logs])
// without its newline.
type lineWriter struct{ d *destination }

func (w lineWriter) Write(p []byte) (int, error) {
	w.d.send(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// PublishStats queues one stats sample as Zero-OS's JSON object.
func (s *Sink) PublishStats(st service.Stats) {
	if s.stats == nil {
		return
	}
	data, _ := json.Marshal(st)
	s.stats.send(string(data))
}

// Dropped returns the number of messages dropped so far, by stream.
func (s *Sink) Dropped() (stdout, stderr, stats int64) {
	if s.stdout != nil {
		stdout = s.stdout.dropped.Load()
	}
	if s.stderr != nil {
		stderr = s.stderr.dropped.Load()
	}
	if s.stats != nil {
		stats = s.stats.dropped.Load()
	}
	return stdout, stderr, stats
}

// Close stops taking messages, publishes what is queued until ctx is done
// (then drops the rest, counted), and closes the connections. Messages
// sent after Close are dropped and counted.
func (s *Sink) Close(ctx context.Context) error {
	for _, d := range s.all() {
		d.mu.Lock()
		if !d.closing.Swap(true) {
			close(d.queue)
		}
		d.mu.Unlock()
	}
	for _, d := range s.all() {
		select {
		case <-d.done:
		case <-ctx.Done():
			close(d.stop)
			<-d.done
		}
	}
	var errs []error
	for _, c := range s.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
