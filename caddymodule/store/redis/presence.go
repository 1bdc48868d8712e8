package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/store"
)

// presenceKey holds, per channel, each node's subscriber count and when
// that report expires: comet:{name}:presence:{channel}, a hash of
// node -> "count:expires-ms". It is not named by the epoch: subscribers
// outlive a lost history. Expiry is per field, checked on read, since
// per-field TTLs need Redis 7.4; the key itself expires when every node
// stopped reporting.
func (k keyspace) presence(channel string) string { return k.prefix + "presence:" + channel }

// ReportSubscribers implements store.Presence.
func (s *Store) ReportSubscribers(ctx context.Context, node string, counts map[string]int, gone []string, ttl time.Duration) error {
	if err := s.unreachable("report subscribers"); err != nil {
		return err
	}
	expires := s.now().Add(ttl).UnixMilli()
	pipe := s.client.Pipeline()
	for channel, n := range counts {
		key := s.keys.presence(channel)
		pipe.HSet(ctx, key, node, strconv.Itoa(n)+":"+strconv.FormatInt(expires, 10))
		pipe.PExpire(ctx, key, 2*ttl)
	}
	for _, channel := range gone {
		pipe.HDel(ctx, s.keys.presence(channel), node)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s.fail(ctx, "report subscribers", err)
	}
	return nil
}

// Subscribers implements store.Presence.
func (s *Store) Subscribers(ctx context.Context, channel, exceptNode string) (int, error) {
	if err := s.unreachable("read subscribers"); err != nil {
		return 0, err
	}
	reports, err := s.client.HGetAll(ctx, s.keys.presence(channel)).Result()
	if err != nil {
		return 0, s.fail(ctx, "read subscribers", err)
	}
	now := s.now().UnixMilli()
	total := 0
	for node, report := range reports {
		countText, expiresText, ok := strings.Cut(report, ":")
		count, err1 := strconv.Atoi(countText)
		expires, err2 := strconv.ParseInt(expiresText, 10, 64)
		if node == exceptNode || !ok || err1 != nil || err2 != nil || expires <= now {
			continue
		}
		total += count
	}
	return total, nil
}

var _ store.Presence = (*Store)(nil)
