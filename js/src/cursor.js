// Ids are `{epoch}-{seq}` (SPEC §3): seq is one counter for the whole hub, so
// one cursor covers every channel of a connection, and ids compare by seq
// within an epoch. A new epoch means the server's history was lost.
export function parseId(id) {
  const m = /^(.+)-(\d+)$/.exec(id)
  return m ? { epoch: m[1], seq: +m[2] } : null
}

// Cursor keeps the position a client presents on every reconnect, and drops
// duplicates. It tracks the newest seq per channel as well as overall: over
// WebSocket a channel subscribed at runtime replays its history after live
// messages of the other channels have gone by, so one overall "newest" would
// throw that history away as duplicates.
export class Cursor {
  constructor(id) {
    this.holds = {}
    this.resets = {}
    this.set(id)
  }

  // set adopts a position the server vouched for: the initial lastId, a
  // long-poll's last_id, the leader tab's cursor.
  set(id) {
    const p = parseId(id)
    if (!p || p.epoch !== this.epoch) this.seen = {}
    this.epoch = p && p.epoch
    this.seq = this.floor = p ? p.seq : -1
    this.last = id || null
  }

  // id is what to present on the next connection. While a runtime
  // subscription's history is still on its way it is the position the
  // subscription started from, so a drop then costs duplicates, not gaps.
  get id() {
    let seq = this.seq
    for (const ch in this.holds) seq = Math.min(seq, this.holds[ch].seq)
    return seq < this.seq ? this.epoch + '-' + seq : this.last
  }

  // accept reports whether a message is new, and moves the cursor past it.
  accept(channel, id) {
    const p = parseId(id)
    if (!p) return true
    if (p.epoch !== this.epoch) {
      // A new history: everything in it is new to us.
      this.epoch = p.epoch
      this.seen = {}
      this.seq = this.floor = -1
    }
    const reset = this.resets[channel]
    const seen = channel in this.seen ? this.seen[channel] : this.floor
    if (p.seq <= seen && !reset) return false
    this.seen[channel] = p.seq
    // After a reset the server replays what it still has, which may lie
    // behind a cursor it could not vouch for: follow it there, or the next
    // reconnect would be reset again.
    if (p.seq > this.seq || reset) {
      this.seq = p.seq
      this.last = id
    }
    for (const ch in this.holds) {
      const h = this.holds[ch]
      // The history of a runtime subscription comes right after its
      // comet.subscribed notice; any other message means it is over.
      if (h.mark != null && (ch !== channel || p.seq > h.mark)) delete this.holds[ch]
    }
    return true
  }

  // reset marks a channel whose history the server could not prove
  // complete (comet.reset): what follows on this connection is taken as is.
  reset(channel) {
    this.resets[channel] = 1
  }

  // hold is called when a channel is subscribed on an open WebSocket.
  hold(channel) {
    if (this.epoch) this.holds[channel] = { seq: this.seq }
  }

  subscribed(channel) {
    const h = this.holds[channel]
    if (h) h.mark = this.seq
  }

  // fresh starts a connection: resets and holds belong to the one before.
  fresh() {
    this.holds = {}
    this.resets = {}
  }
}
