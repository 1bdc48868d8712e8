package redis

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// The reader follows the feed with blocking reads and hands what it finds to
// the hub, in feed order, which is id order: ids are taken and feed entries
// added by the same script, one script at a time.
const (
	// feedBlock is how long one read waits for the feed. It also bounds how
	// late the reader notices a new epoch when its feed has gone quiet (the
	// old feed is gone with the data, so nothing will wake it).
	feedBlock = time.Second
	// feedBatch bounds the entries one read returns, and so one delivery.
	feedBatch = 1024
	// Backoff between attempts while Redis is unreachable. The cap is
	// short because publishes are refused until the reader gets through.
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Reasons given in the reconnect notice.
const (
	reasonFeedTrimmed = "store feed gap"
	reasonNewEpoch    = "store history lost"
	reasonRolledBack  = "store history rolled back"
	reasonConnected   = "store connected"
)

// feedReader is the goroutine that follows the feed. All its fields belong
// to that goroutine once it runs.
type feedReader struct {
	s *Store

	// epoch is the epoch whose feed is followed; lastID the id of the last
	// entry handed over; lastSeq the seq of the last message, so that a
	// message with any other seq than lastSeq+1 reveals a gap.
	epoch   string
	lastID  string
	lastSeq uint64
	synced  bool
	// resync, when not empty, is the reason of the reconnect notice the
	// next sync hands over.
	resync string
	// checkEpoch asks for an epoch check before the next read: after a
	// quiet read or an error, when a flush may have gone unnoticed.
	checkEpoch bool

	// conn is the reader's own connection: a blocking read holds a
	// connection for its whole wait, and Close must be able to name it to
	// end the wait (CLIENT UNBLOCK) rather than tear the pool down under
	// it. connID is its Redis client id, zero while there is none.
	conn   *goredis.Conn
	connID atomic.Int64

	down      bool
	downSince time.Time
	backoff   time.Duration
}

func newFeedReader(s *Store) *feedReader { return &feedReader{s: s} }

// start places the reader at the end of the feed, before the store is
// handed out. If Redis cannot be reached, the reader gets there on its own
// later and then asks local subscribers to reconnect: some may have started
// from a head read meanwhile, and what was published between that head and
// the reader's start would not reach them live.
func (r *feedReader) start(ctx context.Context) {
	if err := r.sync(ctx); err != nil {
		r.resync = reasonConnected
		r.failed(err)
	}
}

func (r *feedReader) run() {
	defer r.s.wg.Done()
	defer r.dropConnection()
	ctx := r.s.ctx
	for ctx.Err() == nil {
		if r.down && !sleep(ctx, r.backoff) {
			return
		}
		err := r.step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.failed(err)
		default:
			r.recovered()
		}
	}
}

// step does one turn: a sync, or an epoch check when one is due and one
// read of the feed.
func (r *feedReader) step(ctx context.Context) error {
	if !r.synced {
		return r.sync(ctx)
	}
	conn, err := r.connection(ctx)
	if err != nil {
		return err
	}
	if r.checkEpoch {
		reason, err := r.epochChanged(ctx, conn)
		if err != nil {
			return err
		}
		r.checkEpoch = false
		if reason != "" {
			r.lost(reason)
			return nil
		}
	}
	// The read gets the block time plus one command's worth: a Redis that
	// is stopped rather than gone must not hold the reader forever.
	rctx, cancel := context.WithTimeout(ctx, feedBlock+r.s.opTimeout)
	defer cancel()
	streams, err := conn.XRead(rctx, &goredis.XReadArgs{
		Streams: []string{r.s.keys.feed(r.epoch), r.lastID},
		Count:   feedBatch,
		Block:   feedBlock,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		r.checkEpoch = true
		return nil
	}
	if err != nil {
		return err
	}
	for _, st := range streams {
		r.hand(st.Messages)
	}
	return nil
}

// epochChanged tells why the history the reader follows is gone, if it
// is: another epoch in force, none (flushed), or the same one with its
// counter below what the reader has already handed over (Redis restarted
// from an older snapshot), which it replaces with a new epoch before its
// ids are handed out twice.
func (r *feedReader) epochChanged(ctx context.Context, conn *goredis.Conn) (reason string, err error) {
	vals, err := conn.HMGet(ctx, r.s.keys.meta(), "epoch", "seq").Result()
	if err != nil {
		return "", err
	}
	epoch, _ := vals[0].(string)
	if epoch != r.epoch {
		return reasonNewEpoch, nil
	}
	text, _ := vals[1].(string)
	if seq, _ := strconv.ParseUint(text, 10, 64); seq >= r.lastSeq {
		return "", nil
	}
	if _, err := r.s.rotateEpoch(ctx, epoch, r.lastSeq); err != nil {
		return "", err
	}
	return reasonRolledBack, nil
}

// sync places the reader at the feed's current end. The position is read
// before the reconnect notice is handed over: a subscriber that registers
// after the notice reads a head at least as new, so nothing between the
// two escapes both its history and its live feed.
func (r *feedReader) sync(ctx context.Context) error {
	epoch, reply, err := r.s.eval(ctx, positionScript, func(epoch string) []string {
		return []string{r.s.keys.meta(), r.s.keys.feed(epoch)}
	})
	if err != nil {
		return err
	}
	seq, _ := reply[1].(int64)
	last, _ := reply[2].(string)
	if r.resync != "" {
		if r.resync != reasonConnected {
			r.s.log.Warn("local subscribers must resume by cursor",
				zap.String("reason", r.resync), zap.String("epoch", epoch), zap.String("previous_epoch", r.epoch))
		}
		notice := message.NewNotice("", message.Reconnect, map[string]any{"reason": r.resync}, r.s.now())
		(*r.s.deliver.Load())([]*message.Message{notice})
	}
	r.epoch, r.lastSeq, r.lastID = epoch, uint64(seq), last
	r.synced, r.resync, r.checkEpoch = true, "", false
	return nil
}

// lost marks the live feed as broken: the next step resyncs and asks every
// local subscriber to reconnect.
func (r *feedReader) lost(reason string) {
	r.synced = false
	r.resync = reason
}

// hand turns feed entries into messages and notices and delivers them.
func (r *feedReader) hand(entries []goredis.XMessage) {
	batch := make([]*message.Message, 0, len(entries))
	defer func() {
		if len(batch) > 0 {
			(*r.s.deliver.Load())(batch)
		}
	}()
	for _, x := range entries {
		seq, err := seqOf(x.ID)
		if err != nil {
			r.s.log.Error("skipping a malformed feed entry", zap.String("id", x.ID))
			r.lastID = x.ID
			continue
		}
		channel, _ := x.Values["c"].(string)
		switch kind, _ := x.Values["k"].(string); kind {
		case "m":
			if seq != r.lastSeq+1 {
				// The feed was trimmed past what this node handed over
				// (it fell more than the feed's length behind). What is
				// before the gap still goes out; then everyone resyncs.
				r.lost(reasonFeedTrimmed)
				return
			}
			e, err := entryFromMap(x.Values)
			if err != nil {
				// Skipping would be a silent gap; resync instead.
				r.s.log.Error("malformed feed entry", zap.String("id", x.ID))
				r.lost(reasonFeedTrimmed)
				return
			}
			batch = append(batch, e.message(message.Cursor{Epoch: r.epoch, Seq: seq}, channel))
			r.lastSeq = seq
		case "d":
			e, _ := entryFromMap(x.Values)
			batch = append(batch, message.NewNotice(channel, message.Deleted, nil, time.UnixMilli(e.time)))
		}
		r.lastID = x.ID
	}
}

// connection is the reader's connection, opened when there is none.
func (r *feedReader) connection(ctx context.Context) (*goredis.Conn, error) {
	if r.conn != nil {
		return r.conn, nil
	}
	conn := r.s.client.Conn()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	r.conn = conn
	r.connID.Store(id)
	return conn, nil
}

// dropConnection closes the reader's connection after an error (the next
// step opens a fresh one) or when the reader ends.
func (r *feedReader) dropConnection() {
	if r.conn == nil {
		return
	}
	r.connID.Store(0)
	_ = r.conn.Close()
	r.conn = nil
}

// interrupt ends the reader's blocking read, if it is in one, so that Close
// need not wait for it to time out. It is called from Close's goroutine,
// after the store's context was cancelled: the woken reader sees that and
// stops. Best effort: a read that is not interrupted ends by itself within
// feedBlock.
func (r *feedReader) interrupt() {
	id := r.connID.Load()
	if id == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), interruptTimeout)
	defer cancel()
	_ = r.s.client.ClientUnblock(ctx, id).Err()
}

// interruptTimeout bounds Close's attempt to wake the reader.
const interruptTimeout = 500 * time.Millisecond

// failed notes a failed step. The outage is logged once, at its start, not
// per attempt; the backoff doubles up to maxBackoff.
func (r *feedReader) failed(err error) {
	r.dropConnection()
	r.checkEpoch = true
	r.backoff = min(max(2*r.backoff, minBackoff), maxBackoff)
	r.s.outage.Store(&err)
	if r.down {
		return
	}
	r.down, r.downSince = true, time.Now()
	r.s.log.Warn("redis unavailable; publishes are refused until it returns, retrying", zap.Error(err))
}

func (r *feedReader) recovered() {
	if !r.down {
		return
	}
	r.s.outage.Store(nil)
	r.s.log.Info("redis available again", zap.Duration("outage", time.Since(r.downSince)))
	r.down, r.backoff = false, 0
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
