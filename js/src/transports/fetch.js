import { sseParser, lineSplitter } from '../parse.js'

// SSE and the NDJSON stream are read with fetch and a stream reader rather
// than EventSource: EventSource hands named events (`event: say`) only to
// listeners registered for that name, which a client cannot know in
// advance; it hides the status of a refused request and the `: ok` comment
// that proves the stream is not buffered; and it reconnects on its own,
// from a URL whose last_id it cannot update.
function streaming(sse) {
  return (c) => {
    const abort = new AbortController()
    fetch(c.url(), {
      signal: abort.signal,
      cache: 'no-store',
      headers: { Accept: sse ? 'text/event-stream' : 'application/x-ndjson' },
    })
      .then((res) => {
        if (!res.ok || !res.body) return refused(c, res)
        // The NDJSON stream sends nothing until a message or a heartbeat,
        // so its headers are all there is to wait for.
        if (!sse) c.open()
        const reader = res.body.getReader()
        const decoder = new TextDecoder()
        const feed = sse ? sseParser() : lineSplitter()
        const pump = () => reader.read().then(({ done, value }) => {
          if (done) return c.end()
          if (sse) c.open()
          c.data()
          for (const item of feed(decoder.decode(value, { stream: true }))) c.text(sse ? item.data : item)
          return pump()
        })
        return pump()
      })
      .catch((err) => c.fail('network', 0, err.message))
    return { close: () => abort.abort() }
  }
}

export const sse = streaming(true)
export const stream = streaming(false)

// refused reports an answer other than 200, with the server's reason
// ({"error": "..."}). 501 means the server does not offer the transport; a
// 200 lands here only from a browser that cannot read a response stream.
export function refused(c, res) {
  return res.json().catch(() => ({})).then((body) =>
    c.fail(res.status === 501 || res.ok ? 'unsupported' : 'status', res.status, body.error || 'HTTP ' + res.status))
}
