// WebSocket (SPEC §4): one text frame per envelope from the server; JSON
// control frames from the client.
export function ws(c) {
  const socket = new WebSocket(c.url())
  let opened = false
  let timer
  socket.onopen = () => {
    opened = true
    c.open()
    c.data()
    // The server's pings are invisible to a page, and a socket on a dead
    // network can look open for many minutes. So the client acks its cursor
    // every heartbeat (the server keeps it, SPEC §4) and takes an ack still
    // unsent a heartbeat later as a dead socket.
    timer = setInterval(() => {
      if (socket.bufferedAmount) return c.end()
      const id = c.ack()
      if (id) send({ op: 'ack', last_id: id })
    }, c.heartbeat)
  }
  socket.onmessage = (e) => {
    c.data()
    c.text(e.data)
  }
  // Close codes need no case of their own: 1001 (server going away), 1008
  // (slow consumer) and 1012 (resume by cursor) all mean "reconnect with
  // the cursor", and that is what the client does after every close. A
  // socket that never opened says the server or a proxy refuses WebSockets.
  socket.onclose = () => (opened ? c.end() : c.fail('refused', 0, 'WebSocket refused'))
  const send = (frame) => socket.send(JSON.stringify(frame))
  return {
    send,
    close() {
      clearInterval(timer)
      socket.onclose = null
      socket.close()
    },
  }
}
