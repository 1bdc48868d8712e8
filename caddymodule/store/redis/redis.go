// Package redis is the shared store: history in Redis, so that several Caddy
// nodes act as one hub (SPEC §7). Ids come from one counter in Redis, so a
// cursor handed out by one node is good on every other; each channel's
// history is a Redis Stream; and every message and deleted notice also goes
// to one fan-out stream, the feed, which a reader goroutine on each node
// follows and hands to the local hub in id order, exactly once.
//
// What it needs from Redis: version 7.0 or later (script flags, XADD with
// {ms}-* ids), one primary (Sentinel and Cluster are not supported yet,
// although keys already share a hash tag), and a maxmemory-policy that never
// evicts these keys (noeviction): an evicted counter is taken for lost
// history, and clients are sent a reset.
//
// While Redis cannot be reached, Append and the reads fail with errors that
// wrap store.ErrUnavailable (publishes are answered 503, nothing is silently
// dropped); once the reader has seen the outage they fail at once instead of
// each waiting for a timeout. The reader retries with capped backoff,
// logging the outage once and the recovery once, and resumes from the last
// feed entry it handed over, so nothing published before or after is lost.
// When Redis comes back empty, or from a snapshot older than what was
// already handed out (its counter went back), a new epoch starts and every
// local subscriber is asked to reconnect (a comet.reconnect notice without
// a channel); resuming by cursor then gets comet.reset.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// Options configure a Redis store.
type Options struct {
	// URL locates Redis, as go-redis's ParseURL reads it:
	// redis://[user:password@]host[:port][/db], rediss:// for TLS, or
	// unix:///path/to/socket. Query options such as dial_timeout or
	// read_timeout are honoured; unset ones get the defaults below.
	URL string
	// Name is the hub's name; its keys are comet:{Name}:... Several hubs
	// can share one Redis. Default: "default".
	Name string
	// Retention chooses each channel's retention. Default: 100 messages, 1h.
	Retention store.RetentionFunc
	// Now is the clock; time.Now when nil. Tests inject their own.
	Now func() time.Time
	// Logger receives outage, recovery and lost-history reports. Default:
	// no logging.
	Logger *zap.Logger
	// NoSweeper, when true, starts no background sweeper (tests call
	// Sweep).
	NoSweeper bool
}

// Store is the Redis store.
type Store struct {
	client *goredis.Client
	keys   keyspace
	now    func() time.Time
	log    *zap.Logger
	// opTimeout bounds one command, as the client's read timeout does; the
	// reader's blocking read gets it on top of its block time.
	opTimeout time.Duration
	// feedLength is the approximate MAXLEN of the feed: how far a reader
	// may fall behind before it has to resync its subscribers.
	feedLength int64

	epoch     atomic.Pointer[string]
	retention atomic.Pointer[store.RetentionFunc]
	deliver   atomic.Pointer[store.DeliverFunc]

	reader *feedReader
	// outage holds the error that made the reader find Redis unreachable,
	// until it reaches it again; nil while all is well.
	outage atomic.Pointer[error]

	// ctx ends the background goroutines; wg waits for them.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Defaults, for what the URL does not set.
const (
	// defaultTimeout bounds dialing and each command. It is short because
	// a publisher waits on it before its 503, and Redis answers in well
	// under a millisecond when it is there at all.
	defaultTimeout = 2 * time.Second
	// defaultFeedLength lets a node fall this many messages behind the
	// others before it has to resync its subscribers.
	defaultFeedLength = 10_000
	defaultName       = "default"
)

// New connects to Redis and starts following the feed. A Redis that cannot
// be reached yet is an outage like any other, not an error: the store
// answers ErrUnavailable until it comes up, so that a comet handler never
// keeps Caddy (and the app behind it) from starting. Only a malformed URL
// fails. ctx bounds the first contact.
func New(ctx context.Context, opts Options) (*Store, error) {
	copts, err := clientOptions(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = defaultName
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Retention == nil {
		opts.Retention = func(string) store.Retention { return store.Retention{Count: 100, Age: time.Hour} }
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Store{
		client:     goredis.NewClient(copts),
		keys:       newKeyspace(opts.Name),
		now:        opts.Now,
		log:        opts.Logger.With(zap.String("store", "redis"), zap.String("hub", opts.Name)),
		opTimeout:  copts.ReadTimeout,
		feedLength: defaultFeedLength,
		ctx:        bg,
		cancel:     cancel,
	}
	s.epoch.Store(new(string))
	s.retention.Store(&opts.Retention)
	s.Listen(func([]*message.Message) {})
	s.reader = newFeedReader(s)
	// Placing the reader before New returns means that whatever is
	// appended afterwards, on any node, is delivered here.
	s.reader.start(ctx)
	s.wg.Add(1)
	go s.reader.run()
	if !opts.NoSweeper {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	return s, nil
}

// clientOptions reads the URL and fills in what it leaves unset.
func clientOptions(rawURL string) (*goredis.Options, error) {
	copts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis store: url: %w", err)
	}
	query := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		query = u.Query()
	}
	if !query.Has("dial_timeout") {
		copts.DialTimeout = defaultTimeout
	}
	if !query.Has("read_timeout") {
		copts.ReadTimeout = defaultTimeout
	}
	if !query.Has("write_timeout") {
		copts.WriteTimeout = defaultTimeout
	}
	if copts.ReadTimeout <= 0 {
		// -1 and -2 mean "no deadline" to go-redis; the reader still
		// needs a bound on top of its block time.
		copts.ReadTimeout = defaultTimeout
	}
	if !query.Has("max_retries") {
		// An append whose reply was lost may have run: replaying it would
		// store the batch twice. Failing is the honest answer; the
		// publisher retries with its idempotency key.
		copts.MaxRetries = -1
	}
	// Our own reader backs off between attempts; go-redis's retries on
	// top would only make each failing request slower.
	copts.DialerRetries = 1
	// Deadlines of request contexts apply to Redis commands too.
	copts.ContextTimeoutEnabled = true
	// Maintenance notifications are a Redis Enterprise/Cloud handshake;
	// asking a plain Redis for them costs a command per connection.
	copts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return copts, nil
}

// Listen implements store.Store.
func (s *Store) Listen(deliver store.DeliverFunc) { s.deliver.Store(&deliver) }

// SetRetention implements store.Store. Streams shrink to the new rules at
// their next append; reads apply them at once.
func (s *Store) SetRetention(rules store.RetentionFunc) { s.retention.Store(&rules) }

func (s *Store) retentionOf(channel string) store.Retention { return (*s.retention.Load())(channel) }

// limits are a channel's retention as script arguments: the most messages
// it keeps, and the time (Unix ms) before which a message has aged out.
func (s *Store) limits(channel string, now time.Time) (maxCount int, cutoff int64, age time.Duration) {
	r := s.retentionOf(channel)
	return max(r.Count, 0), now.Add(-r.Age).UnixMilli(), r.Age
}

// Close implements store.Store: it stops the reader and the sweeper and
// closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// A cancelled context does not interrupt a command in flight, so
		// the reader's blocking read is woken with CLIENT UNBLOCK; the
		// goroutines end before the client closes, so none is left with a
		// command on a closed pool.
		s.cancel()
		s.reader.interrupt()
		s.wg.Wait()
		if err := s.client.Close(); err != nil {
			s.closeErr = fmt.Errorf("redis store: close: %w", err)
		}
	})
	return s.closeErr
}

// currentEpoch is the epoch this node names its keys after; empty until
// Redis was first reached.
func (s *Store) currentEpoch() string { return *s.epoch.Load() }

func (s *Store) adoptEpoch(epoch string) { s.epoch.Store(&epoch) }

// ensureEpoch makes an epoch in Redis when there is none and adopts the one
// in force.
func (s *Store) ensureEpoch(ctx context.Context) (string, error) {
	fresh, err := message.NewEpoch()
	if err != nil {
		return "", err
	}
	epoch, err := ensureEpochScript.Run(ctx, s.client, []string{s.keys.meta()}, fresh).Text()
	if err != nil {
		return "", err
	}
	s.adoptEpoch(epoch)
	return epoch, nil
}

// rotateEpoch starts a new epoch if epoch's counter is still below seen,
// and adopts whichever epoch is then in force.
func (s *Store) rotateEpoch(ctx context.Context, epoch string, seen uint64) (string, error) {
	fresh, err := message.NewEpoch()
	if err != nil {
		return "", err
	}
	current, err := rotateEpochScript.Run(ctx, s.client, []string{s.keys.meta()}, epoch, seen, fresh).Text()
	if err != nil {
		return "", err
	}
	s.adoptEpoch(current)
	return current, nil
}

// maxEpochAttempts bounds how often one operation follows a changing
// epoch; more than one change within a single operation means Redis is
// being flushed in a loop.
const maxEpochAttempts = 3

var errEpochChurn = errors.New("the epoch kept changing")

// eval runs a script that begins with the epoch check, on the keys of the
// epoch this node believes in. When Redis holds another (another node made
// it after a flush) or none (flushed), the node adopts or makes the current
// one and runs the script again. It answers the epoch the script ran in.
func (s *Store) eval(ctx context.Context, script *goredis.Script, keys func(epoch string) []string, args ...any) (string, []any, error) {
	argv := make([]any, 0, 1+len(args))
	argv = append(argv, "")
	argv = append(argv, args...)
	for range maxEpochAttempts {
		epoch := s.currentEpoch()
		if epoch == "" {
			var err error
			if epoch, err = s.ensureEpoch(ctx); err != nil {
				return "", nil, err
			}
		}
		argv[0] = epoch
		reply, err := script.Run(ctx, s.client, keys(epoch), argv...).Slice()
		if err != nil {
			return "", nil, err
		}
		status, _ := reply[0].(string)
		if status != "epoch" {
			return epoch, reply, nil
		}
		// An empty epoch (the data is gone) makes the next turn create
		// one.
		current, _ := reply[1].(string)
		s.adoptEpoch(current)
	}
	return "", nil, errEpochChurn
}

// unreachable fails an operation at once while the reader knows Redis to
// be unreachable. Without it every publish would wait for its own dial or
// read timeout before its 503, and each would have go-redis log its own
// failed dial; this way a PHP request gets its answer at once, and only the
// reader, at its backoff pace, knocks on Redis's door. The price: up to one
// backoff (maxBackoff at most) of refusals after Redis is back, until the
// reader notices.
func (s *Store) unreachable(op string) error {
	if cause := s.outage.Load(); cause != nil {
		return fmt.Errorf("redis store: %s: %w: %w", op, store.ErrUnavailable, *cause)
	}
	return nil
}

// unavailablePrefixes are the Redis error replies that mean "not now"
// rather than "wrong": loading a dump, a busy script, a replica that lost
// its primary, a read-only replica after a failover, out of memory.
var unavailablePrefixes = []string{"LOADING", "BUSY", "MASTERDOWN", "READONLY", "OOM", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF"}

// fail wraps an error of operation op. Everything that says Redis cannot
// serve now (network errors, timeouts, a closed client, the replies above)
// wraps store.ErrUnavailable, which the HTTP layer answers with 503; a
// caller that went away gets its context error back.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("redis store: %s: %w", op, err)
	}
	var reply goredis.Error
	if errors.As(err, &reply) {
		msg := strings.TrimPrefix(reply.Error(), "ERR ")
		unavailable := false
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p) {
				unavailable = true
				break
			}
		}
		if !unavailable {
			return fmt.Errorf("redis store: %s: %w", op, err)
		}
	}
	return fmt.Errorf("redis store: %s: %w: %w", op, store.ErrUnavailable, err)
}

var _ store.Store = (*Store)(nil)
