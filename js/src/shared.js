// Shared mode: one connection for all the tabs of an origin. The tab holding
// a Web Lock is the leader: it holds the connection for the union of every
// tab's channels and relays what it receives on a BroadcastChannel. The
// browser releases the lock when the leader closes or crashes, so a waiting
// tab takes over at once, from the cursor of the last relayed message: what
// the old leader received but did not relay is sent again, never lost.

export function canShare() {
  return typeof BroadcastChannel === 'function' && typeof navigator === 'object' && !!navigator.locks
}

// share wires a Comet into the tab group named `name`. Messages, all small
// objects with a type `t`:
//   subs {tab, ch}   a tab's channels, sent on every change and when asked
//   who              asks every tab for its channels (new tab, new leader)
//   bye {tab}        a tab leaves
//   lead             a new leader: requests sent to the old one are void
//   env {env}        an envelope the leader received
//   cur {id}         the leader's cursor, when it moved without a message
//   emit {ev, args}  a connection event (state, error)
//   send/rep         comet.send() from a follower, and its answer
export function share(comet, name) {
  const bc = new BroadcastChannel(name)
  const tab = Math.random().toString(36).slice(2)
  const tabs = (comet.tabs = {})
  const abort = new AbortController()
  let release
  let answered
  const post = (m) => bc.postMessage(m)
  const announce = () => post({ t: 'subs', tab, ch: comet.channels() })
  const leader = () => comet.role === 'leader'

  bc.onmessage = ({ data: m }) => {
    const t = m.t
    if (t === 'subs' || t === 'bye') {
      if (t === 'bye') delete tabs[m.tab]
      else tabs[m.tab] = m.ch
      if (answered) answered[m.tab] = 1
      if (leader()) comet._sync()
    } else if (t === 'who') {
      announce()
      if (leader()) {
        post({ t: 'cur', id: comet.cursor.id })
        post({ t: 'emit', ev: 'state', args: [comet.state, comet.transport] })
      }
    } else if (leader()) {
      if (t === 'send') {
        const answer = (r) => post(Object.assign({ t: 'rep', tab: m.tab, ref: m.ref }, r))
        comet.send(m.data).then((v) => answer({ v }), (e) => answer({ e: { reason: e.message, status: e.status } }))
      }
    } else if (t === 'env') comet._envelope(m.env)
    else if (t === 'cur') comet.cursor.set(m.id)
    else if (t === 'emit') comet._emit.apply(comet, [m.ev].concat(m.args))
    else if (t === 'rep' && m.tab === tab) comet._settle(m.ref, m.e, m.v)
    else if (t === 'lead') comet._voidSends()
  }

  navigator.locks
    .request(name, { signal: abort.signal }, () => {
      comet.role = 'leader'
      post({ t: 'lead' })
      comet._voidSends()
      // Tabs that crashed never said bye: those that do not answer within
      // two seconds are dropped. Until then their channels stay in the set,
      // which costs nothing, while dropping a live tab's would lose its
      // messages.
      answered = {}
      post({ t: 'who' })
      setTimeout(() => {
        for (const id in tabs) if (!answered[id]) delete tabs[id]
        answered = null
        comet._sync()
      }, 2000)
      comet._sync()
      return new Promise((r) => (release = r))
    })
    .catch(() => {}) // aborted by close() before the lock came

  const hide = () => post({ t: 'bye', tab })
  addEventListener('pagehide', hide)
  addEventListener('pageshow', announce)
  announce()
  post({ t: 'who' })

  return {
    tab,
    post,
    announce,
    close() {
      hide()
      removeEventListener('pagehide', hide)
      removeEventListener('pageshow', announce)
      abort.abort()
      if (release) release()
      bc.close()
    },
  }
}
