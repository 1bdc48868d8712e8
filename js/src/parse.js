// Pure parsers for what the transports receive, so they can be tested
// without a browser. Each parser keeps the unfinished tail of a chunk for the
// next one: the network splits a stream wherever it likes.

// sseParser returns a feed function: give it text as it arrives, get back
// the events it completed, as {data, event, id}. It follows the WHATWG event
// stream rules (HTML §9.2.6): CR, LF or CRLF line ends, `data:` lines joined
// by LF, comments and `retry:` ignored (the client schedules its own
// reconnects), one optional space after the colon.
export function sseParser() {
  let rest = ''
  let ev = {}
  return (chunk) => {
    // A CR at the very end may be the first half of a CRLF: keep it.
    const lines = (rest + chunk).split(/\r\n|\r(?!$)|\n/)
    rest = lines.pop()
    const out = []
    for (const line of lines) {
      if (line === '') {
        if (ev.data != null) out.push(ev)
        ev = {}
        continue
      }
      const colon = line.indexOf(':')
      if (colon === 0) continue // a comment: ": ok", ": heartbeat"
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value[0] === ' ') value = value.slice(1)
      if (field === 'data') ev.data = ev.data == null ? value : ev.data + '\n' + value
      else if (field === 'event' || field === 'id') ev[field] = value
    }
    return out
  }
}

// lineSplitter returns a feed function for NDJSON: it gives back each
// complete, non-empty line. Empty lines are the stream's heartbeats.
export function lineSplitter() {
  let rest = ''
  return (chunk) => {
    const lines = (rest + chunk).split('\n')
    rest = lines.pop()
    return lines.map((l) => l.replace(/\r$/, '')).filter(Boolean)
  }
}

// parseEnvelope reads one envelope (SPEC §4); anything that is not a JSON
// object is dropped rather than allowed to break the connection.
export function parseEnvelope(text) {
  try {
    const env = JSON.parse(text)
    return env && typeof env === 'object' && !Array.isArray(env) ? env : null
  } catch (e) {
    return null
  }
}

// validChannel applies the server's channel rules (SPEC §2) before a
// request is made, so a typo throws where it was written instead of coming
// back as a 400 on every reconnect.
export function validChannel(name) {
  return typeof name === 'string' && /^[\w.:@/-]{1,128}$/.test(name) &&
    name.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
}
