import { refused } from './fetch.js'

// Long-poll (SPEC §4): each answer is {"messages": [...], "last_id": "..."};
// the next request carries that last_id, which acknowledges everything up to
// it. The loop polls again at once after each answer; a comet.reconnect in an
// answer needs nothing more than that. The first poll of a connection asks
// for an answer at once (wait=0): it tells the cursor when the client has
// none, and that the server is there, which a held poll cannot.
export function longpoll(c) {
  let abort
  let closed = false
  let first = true
  const poll = () => {
    abort = new AbortController()
    fetch(c.url(first ? 0 : null), { signal: abort.signal, cache: 'no-store' })
      .then((res) => {
        if (!res.ok) return refused(c, res)
        return res.json().then((body) => {
          first = false
          c.open()
          c.data()
          for (const env of body.messages) c.env(env)
          c.cursor(body.last_id)
          if (!closed) poll()
        })
      })
      .catch((err) => c.fail('network', 0, err.message))
  }
  poll()
  return {
    close() {
      closed = true
      abort.abort()
    },
  }
}
