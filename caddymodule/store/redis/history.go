package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/store"
)

// Since implements store.Store. Retention by age is applied as the history
// is read, so a channel nobody publishes to still ages out on time.
func (s *Store) Since(ctx context.Context, channel string, after message.Cursor) ([]*message.Message, bool, error) {
	if err := s.unreachable("since"); err != nil {
		return nil, false, err
	}
	maxCount, cutoff, _ := s.limits(channel, s.now())
	earliest := 0
	if after.IsEarliest() {
		earliest = 1
	}
	// Lua compares numbers as doubles; a cursor beyond 2^53 is ahead of
	// any counter all the same.
	seq := min(after.Seq, 1<<53)
	epoch, reply, err := s.eval(ctx, sinceScript, func(epoch string) []string {
		return []string{s.keys.meta(), s.keys.channel(epoch, channel), s.keys.floors(epoch)}
	}, channel, maxCount, cutoff, earliest, after.Epoch, seq)
	if err != nil {
		return nil, false, s.fail(ctx, "since", err)
	}
	complete, _ := reply[1].(int64)
	entries, _ := reply[2].([]any)
	var msgs []*message.Message
	for _, raw := range entries {
		m, err := entryFromReply(epoch, channel, raw)
		if err != nil {
			return nil, false, fmt.Errorf("redis store: since: %w", err)
		}
		msgs = append(msgs, m)
	}
	return msgs, complete == 1, nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (message.Cursor, error) {
	if err := s.unreachable("head"); err != nil {
		return message.Cursor{}, err
	}
	for range maxEpochAttempts {
		vals, err := s.client.HMGet(ctx, s.keys.meta(), "epoch", "seq").Result()
		if err != nil {
			return message.Cursor{}, s.fail(ctx, "head", err)
		}
		epoch, _ := vals[0].(string)
		if epoch == "" {
			// Nothing in Redis yet, or no longer: the epoch made now is
			// the one every node will adopt.
			if _, err := s.ensureEpoch(ctx); err != nil {
				return message.Cursor{}, s.fail(ctx, "head", err)
			}
			continue
		}
		var seq uint64
		if text, _ := vals[1].(string); text != "" {
			if seq, err = strconv.ParseUint(text, 10, 64); err != nil {
				return message.Cursor{}, fmt.Errorf("redis store: head: counter %q: %w", text, err)
			}
		}
		s.adoptEpoch(epoch)
		return message.Cursor{Epoch: epoch, Seq: seq}, nil
	}
	return message.Cursor{}, s.fail(ctx, "head", errEpochChurn)
}

// Info implements store.Store.
func (s *Store) Info(ctx context.Context, channel string) (store.Info, bool, error) {
	if err := s.unreachable("info"); err != nil {
		return store.Info{Channel: channel}, false, err
	}
	maxCount, cutoff, _ := s.limits(channel, s.now())
	epoch, reply, err := s.eval(ctx, infoScript, func(epoch string) []string {
		return []string{s.keys.meta(), s.keys.channel(epoch, channel)}
	}, maxCount, cutoff)
	if err != nil {
		return store.Info{Channel: channel}, false, s.fail(ctx, "info", err)
	}
	return infoFromReply(epoch, channel, reply)
}

// Delete implements store.Store. The deleted notice travels through the
// feed, so subscribers of the channel end on every node, this one included.
func (s *Store) Delete(ctx context.Context, channel string) (store.Info, bool, error) {
	if err := s.unreachable("delete"); err != nil {
		return store.Info{Channel: channel}, false, err
	}
	now := s.now()
	maxCount, cutoff, _ := s.limits(channel, now)
	epoch, reply, err := s.eval(ctx, deleteScript, func(epoch string) []string {
		return []string{s.keys.meta(), s.keys.channel(epoch, channel), s.keys.floors(epoch), s.keys.expiry(epoch), s.keys.feed(epoch)}
	}, channel, maxCount, cutoff, now.UnixMilli(), s.feedLength)
	if err != nil {
		return store.Info{Channel: channel}, false, s.fail(ctx, "delete", err)
	}
	return infoFromReply(epoch, channel, reply)
}

// infoFromReply reads {'ok', found, messages, last seq}.
func infoFromReply(epoch, channel string, reply []any) (store.Info, bool, error) {
	info := store.Info{Channel: channel}
	if len(reply) != 4 {
		return info, false, fmt.Errorf("redis store: unexpected reply %v", reply)
	}
	found, _ := reply[1].(int64)
	messages, _ := reply[2].(int64)
	last, _ := reply[3].(int64)
	if found != 1 {
		return info, false, nil
	}
	info.Messages = int(messages)
	if last > 0 {
		info.LastID = message.Cursor{Epoch: epoch, Seq: uint64(last)}
	}
	return info, true, nil
}

// entry is a message as a channel stream or the feed holds it.
type entry struct {
	time  int64
	event string
	typ   string
	data  string
}

var errBadEntry = errors.New("malformed stream entry")

// message re-encodes an entry. Same id, draft and time give the same
// envelope bytes on every node.
func (e entry) message(id message.Cursor, channel string) *message.Message {
	d := message.Draft{Channel: channel, Event: e.event, Type: e.typ, Data: []byte(e.data)}
	return message.New(id, d, time.UnixMilli(e.time))
}

// entryFromMap reads the fields of an entry as go-redis hands them over.
func entryFromMap(values map[string]any) (entry, error) {
	var e entry
	t, _ := values["t"].(string)
	ms, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return e, errBadEntry
	}
	e.time = ms
	e.event, _ = values["e"].(string)
	e.typ, _ = values["y"].(string)
	e.data, _ = values["d"].(string)
	return e, nil
}

// entryFromReply reads one entry of an XRANGE reply passed through a
// script: {id, {field, value, ...}}.
func entryFromReply(epoch, channel string, raw any) (*message.Message, error) {
	pair, _ := raw.([]any)
	if len(pair) != 2 {
		return nil, errBadEntry
	}
	id, _ := pair[0].(string)
	seq, err := seqOf(id)
	if err != nil {
		return nil, err
	}
	fields, _ := pair[1].([]any)
	values := make(map[string]any, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		values[name] = fields[i+1]
	}
	e, err := entryFromMap(values)
	if err != nil {
		return nil, err
	}
	return e.message(message.Cursor{Epoch: epoch, Seq: seq}, channel), nil
}

// seqOf reads the seq of a stream id, {seq}-{n}.
func seqOf(id string) (uint64, error) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return 0, errBadEntry
	}
	seq, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return 0, errBadEntry
	}
	return seq, nil
}
