// Test page helpers driven by js/test/browser: everything a test needs to
// observe is recorded on window, for page.waitForFunction to poll.
window.received = [] // {channel, id, data}
window.events = [] // [name, ...args]
window.states = [] // [state, transport]

window.start = function (options, channels) {
  const comet = (window.comet = new Comet('/comet', options))
  comet.on('state', (s, t) => window.states.push([s, t]))
  comet.on('reset', (ch) => window.events.push(['reset', ch]))
  comet.on('deleted', (ch) => window.events.push(['deleted', ch]))
  comet.on('error', (e) => window.events.push(['error', e.message, e.status]))
  for (const ch of channels) window.listen(ch)
}

window.listen = function (channel) {
  return window.comet.subscribe(channel, (data, env) => window.received.push({ channel, id: env.id, data }))
}

window.ready = true
