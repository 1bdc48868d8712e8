package redis

// keyspace names the keys of one hub. Every key starts with comet:{name}:,
// braces included: they are a Redis Cluster hash tag, so that all keys of a
// hub live in one slot and a script may touch any of them. A plain Redis
// ignores the braces.
//
//	comet:{name}:meta                  hash: epoch, seq (the id counter), forgotten
//	comet:{name}:{epoch}:feed          stream: every message and deleted notice, for fan-out
//	comet:{name}:{epoch}:ch:{channel}  stream: a channel's retained messages, ids {seq}-0
//	comet:{name}:{epoch}:floors        hash: channel -> seq of the newest message trimmed from it
//	comet:{name}:{epoch}:expiry        sorted set: channel -> when its newest message ages out (ms)
//	comet:{name}:{epoch}:idem:{key}    string: the answer to an idempotency key, with a TTL
//
// Everything but meta is named by the epoch. When meta is lost (Redis
// flushed, restarted empty, or the key evicted on its own) the new epoch
// starts a new counter at zero, and stream ids from the old one must never
// collide with it: XADD refuses an id below a stream's top. Keys of a lost
// epoch are unreachable and, after a flush, gone anyway.
type keyspace struct {
	prefix string
}

func newKeyspace(name string) keyspace {
	return keyspace{prefix: "comet:{" + name + "}:"}
}

func (k keyspace) meta() string { return k.prefix + "meta" }

func (k keyspace) epochPrefix(epoch string) string { return k.prefix + epoch + ":" }

func (k keyspace) feed(epoch string) string { return k.epochPrefix(epoch) + "feed" }

func (k keyspace) channel(epoch, channel string) string {
	return k.epochPrefix(epoch) + "ch:" + channel
}

func (k keyspace) floors(epoch string) string { return k.epochPrefix(epoch) + "floors" }

func (k keyspace) expiry(epoch string) string { return k.epochPrefix(epoch) + "expiry" }

func (k keyspace) idempotency(epoch, key string) string {
	return k.epochPrefix(epoch) + "idem:" + key
}
