package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// Append implements store.Store. The whole batch is one script: it gets
// consecutive ids, lands in its channels and in the feed, or nothing
// happens. Delivery is not done here: this node's feed reader hands the
// batch to the hub like any other node's, so that every node sees every
// message once, in id order, whoever published it.
//
// A failed append may still have been stored when Redis went away after
// running it but before answering; a publisher retrying with its
// idempotency key then gets the first ids back instead of a duplicate.
func (s *Store) Append(ctx context.Context, drafts []message.Draft, key string) ([]*message.Message, bool, error) {
	if len(drafts) == 0 {
		return nil, false, nil
	}
	if err := s.unreachable("append"); err != nil {
		return nil, false, err
	}
	now := s.now()
	nowMS := now.UnixMilli()

	// Channels are numbered in order of first appearance; each message
	// names its channel by number, so a channel's stream key and retention
	// are passed once per batch.
	var channels []string
	numbers := make([]int, len(drafts))
	for i, d := range drafts {
		n := indexOf(channels, d.Channel)
		if n < 0 {
			channels = append(channels, d.Channel)
			n = len(channels) - 1
		}
		numbers[i] = n + 1
	}

	// The key lives as long as the retention of the batch's first channel:
	// a retry after that could not be answered from history anyway.
	var keyExpiry, keyTTL int64
	if key != "" {
		if age := s.retentionOf(drafts[0].Channel).Age; age > 0 {
			keyTTL = max(age.Milliseconds(), 1)
			keyExpiry = nowMS + keyTTL
		}
	}

	args := make([]any, 0, 5+4*len(channels)+4*len(drafts))
	args = append(args, nowMS, keyExpiry, keyTTL, s.feedLength, len(channels))
	for _, ch := range channels {
		maxCount, cutoff, age := s.limits(ch, now)
		args = append(args, ch, maxCount, cutoff, now.Add(age).UnixMilli())
	}
	for i, d := range drafts {
		args = append(args, numbers[i], d.Event, d.Type, d.Data)
	}
	keys := func(epoch string) []string {
		k := make([]string, 0, 5+len(channels))
		idem := s.keys.meta() // a placeholder: the script reads it only when keyed
		if keyExpiry != 0 {
			idem = s.keys.idempotency(epoch, key)
		}
		k = append(k, s.keys.meta(), s.keys.feed(epoch), s.keys.floors(epoch), s.keys.expiry(epoch), idem)
		for _, ch := range channels {
			k = append(k, s.keys.channel(epoch, ch))
		}
		return k
	}

	epoch, reply, err := s.eval(ctx, appendScript, keys, args...)
	if err != nil {
		return nil, false, s.fail(ctx, "append", err)
	}
	if status, _ := reply[0].(string); status == "replay" {
		answer, _ := reply[1].(string)
		msgs, err := s.replay(ctx, epoch, answer)
		if err != nil {
			return nil, false, s.fail(ctx, "append: replay idempotency key", err)
		}
		return msgs, true, nil
	}
	first, ok := reply[1].(int64)
	if !ok || first < 1 {
		return nil, false, fmt.Errorf("redis store: append: unexpected reply %v", reply)
	}
	msgs := make([]*message.Message, len(drafts))
	for i, d := range drafts {
		msgs[i] = message.New(message.Cursor{Epoch: epoch, Seq: uint64(first) + uint64(i)}, d, now)
	}
	return msgs, false, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

var errBadAnswer = errors.New("malformed stored answer")

// replay rebuilds the messages of a first append from the answer its
// idempotency key holds: "{expiry} {first seq} {time}\n{channel}\n...".
// Their content is read back from the channels' history; a message that
// retention has dropped since comes back with its id, channel and time
// only, which is all a publish answer shows.
func (s *Store) replay(ctx context.Context, epoch, answer string) ([]*message.Message, error) {
	head, rest, _ := strings.Cut(answer, "\n")
	fields := strings.Fields(head)
	if len(fields) != 3 || rest == "" {
		return nil, errBadAnswer
	}
	first, err1 := strconv.ParseUint(fields[1], 10, 64)
	at, err2 := strconv.ParseInt(fields[2], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, errBadAnswer
	}
	channels := strings.Split(rest, "\n")

	pipe := s.client.Pipeline()
	reads := make([]*goredis.XMessageSliceCmd, len(channels))
	for i, ch := range channels {
		id := strconv.FormatUint(first+uint64(i), 10) + "-0"
		reads[i] = pipe.XRange(ctx, s.keys.channel(epoch, ch), id, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	msgs := make([]*message.Message, len(channels))
	for i, ch := range channels {
		id := message.Cursor{Epoch: epoch, Seq: first + uint64(i)}
		entries := reads[i].Val()
		if len(entries) == 1 {
			if e, err := entryFromMap(entries[0].Values); err == nil {
				msgs[i] = e.message(id, ch)
				continue
			}
		}
		msgs[i] = message.New(id, message.Draft{Channel: ch}, time.UnixMilli(at))
	}
	return msgs, nil
}
