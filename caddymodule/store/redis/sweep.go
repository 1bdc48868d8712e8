package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

const (
	// sweepInterval is how often channels whose history aged out are
	// forgotten. Reads filter by age themselves, so this bounds how many
	// keys idle channels hold in Redis, not correctness.
	sweepInterval = 5 * time.Second
	// sweepBatch and sweepRounds bound one sweep: at most this many
	// channels per round, this many rounds; the rest waits for the next.
	sweepBatch  = 256
	sweepRounds = 16
)

func (s *Store) sweepLoop() {
	defer s.wg.Done()
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
			ctx, cancel := context.WithTimeout(s.ctx, sweepInterval)
			// An outage is the reader's to report.
			if err := s.Sweep(ctx); err != nil && s.ctx.Err() == nil {
				s.log.Debug("sweep failed", zap.Error(err))
			}
			cancel()
		}
	}
}

// Sweep forgets channels whose whole history has aged out, as the memory
// store's sweep does: their stream, floor and expiry go, and the forgotten
// floor rises to their last id. Every node sweeps; the script makes a
// second sweep of the same channel a no-op.
func (s *Store) Sweep(ctx context.Context) error {
	if err := s.unreachable("sweep"); err != nil {
		return err
	}
	epoch := s.currentEpoch()
	if epoch == "" {
		return nil
	}
	now := s.now()
	for range sweepRounds {
		due, err := s.client.ZRangeByScore(ctx, s.keys.expiry(epoch), &goredis.ZRangeBy{
			Min:   "-inf",
			Max:   strconv.FormatInt(now.UnixMilli(), 10),
			Count: sweepBatch,
		}).Result()
		if err != nil {
			return s.fail(ctx, "sweep", err)
		}
		for _, channel := range due {
			maxCount, cutoff, age := s.limits(channel, now)
			_, _, err := s.eval(ctx, sweepScript, func(epoch string) []string {
				return []string{s.keys.meta(), s.keys.channel(epoch, channel), s.keys.floors(epoch), s.keys.expiry(epoch)}
			}, channel, maxCount, cutoff, now.UnixMilli(), age.Milliseconds())
			if err != nil {
				return s.fail(ctx, "sweep", err)
			}
		}
		if len(due) < sweepBatch {
			return nil
		}
	}
	return nil
}
