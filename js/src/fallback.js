// Transport choice. A transport is skipped when it fails in a way that says
// something about the transport rather than the server: the server does not
// offer it (501), a proxy or antivirus holds its first byte back, or a
// WebSocket cannot even open. Such failures are remembered for a while, but
// only once another transport has worked in the same round: when everything
// fails, the server is down, and it would be wrong to blame the transports.

const ADVANCE = { unsupported: 1, silent: 1, refused: 1 }

// Memory keeps remembered failures in localStorage, shared by the tabs of
// the origin and the next page loads, or in memory where storage is denied.
export class Memory {
  constructor(key, ttl) {
    this.key = key
    this.ttl = ttl
    this.mem = {}
  }

  get() {
    try {
      return JSON.parse(localStorage.getItem(this.key)) || {}
    } catch (e) {
      return this.mem
    }
  }

  add(names, now) {
    const m = this.get()
    for (const n of names) m[n] = now + this.ttl
    this.mem = m
    try {
      localStorage.setItem(this.key, JSON.stringify(m))
    } catch (e) {}
  }
}

// Fallback walks the configured order one round at a time.
export class Fallback {
  constructor(order, memory) {
    this.order = order
    this.memory = memory
    this.reset()
  }

  reset() {
    this.tried = []
    this.failed = []
  }

  // next names the transport to try now, or nothing when the round is over
  // and the caller should back off; the call after that starts a new round.
  // When every transport is remembered as broken, the last one is tried all
  // the same: a client must never be left with nothing.
  next(now) {
    const skip = this.memory.get()
    const left = this.order.filter((t) => this.tried.indexOf(t) < 0)
    const name = left.find((t) => !(skip[t] > now)) ||
      (this.tried.length ? undefined : this.order[this.order.length - 1])
    if (name) this.tried.push(name)
    else this.reset()
    return name
  }

  // fail reports whether to try the next transport at once.
  fail(name, kind) {
    if (ADVANCE[kind]) {
      this.failed.push(name)
      return true
    }
    this.reset()
    return false
  }

  // proved is called when a transport delivers its first byte.
  proved(now) {
    if (this.failed.length) this.memory.add(this.failed, now)
    this.reset()
  }
}
