// Type declarations for @cometbox/client (js/src/comet.js).

/** The one JSON envelope every transport carries (SPEC §4). */
export interface Envelope<T = unknown> {
  /** `{epoch}-{seq}`; absent on notices, which never move the cursor. */
  id?: string
  channel?: string
  /** The publisher's `Comet-Event`, or `comet.<notice>` for notices. */
  event?: string
  /** The publisher's Content-Type. */
  type?: string
  /** A JSON value when `type` is JSON, else a string. */
  data?: T
  /** When the hub accepted the message, in Unix milliseconds. */
  time: number
  /** On comet.reply and comet.error over WebSocket: the request's reference. */
  ref?: string
}

export type TransportName = 'ws' | 'sse' | 'stream' | 'longpoll'

/**
 * idle: no channel subscribed, so no connection; connecting; open;
 * waiting: backing off before the next attempt; closed: close() was called.
 */
export type State = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed'

export interface CometOptions {
  /** Transports to try, in order. Default `['ws', 'sse', 'stream', 'longpoll']`. */
  transports?: TransportName[]
  /** Sent as `?token=` on every request (a JWT minted by the backend). A function is called on every reconnect, so a refreshed token is picked up. */
  token?: string | (() => string)
  /** Initial cursor: a message id, or `'earliest'` for everything the server retains. Default: from now on. */
  lastId?: string
  /** Smallest backoff cap, in ms (full jitter: the delay is random below the cap). Default 500. */
  minDelay?: number
  /** Largest backoff cap, in ms. Default 30000. */
  maxDelay?: number
  /** How long a transport may stay silent after the request before it is taken as buffered and skipped, in ms. Default 5000. */
  firstByteTimeout?: number
  /** The server's `heartbeat`, in ms; a stream silent for twice this is taken as dead. Default 25000. */
  heartbeat?: number
  /** Long-poll `?wait=`, in seconds. Default: the server's `longpoll_timeout`. */
  wait?: number
  /** How long a transport that failed on this network is skipped, in ms. Default 1800000 (30 minutes). */
  remember?: number
  /** One connection for all tabs of the origin (Web Locks + BroadcastChannel); a connection per tab where they are missing. Default false. */
  shared?: boolean
}

/** What `error` listeners and rejected `send()` promises receive. */
export interface CometError extends Error {
  /** HTTP status, or the status of a comet.error notice; 0 for network failures. */
  status?: number
  /** The transport that failed, for connection errors. */
  transport?: TransportName
  /** For comet.error notices: the server's reason. */
  reason?: string
  /** For comet.error notices about one channel. */
  channel?: string
}

export type Handler<T = any> = (data: T, envelope: Envelope<T>) => void

export class Comet {
  /** `prefix` is the comet prefix, relative to the page (`'/comet'`) or absolute. */
  constructor(prefix: string, options?: CometOptions)

  /** Current connection state. */
  readonly state: State
  /** Transport of the current connection, if any. */
  readonly transport: TransportName | null
  /** 'solo' without shared mode; in shared mode 'leader' for the tab that holds the connection, else 'follower'. */
  readonly role: 'solo' | 'leader' | 'follower'

  /** Calls handler for each message of `channel`; returns the function that unsubscribes it. Throws a TypeError for an invalid channel name. */
  subscribe<T = any>(channel: string, handler: Handler<T>): () => void
  /** Removes one handler, or all of the channel's handlers when none is given. */
  unsubscribe(channel: string, handler?: Handler): void
  /** The channels this client holds. */
  channels(): string[]

  on(event: 'state', fn: (state: State, transport: TransportName | null) => void): () => void
  on(event: 'message', fn: Handler): () => void
  /** The server could not prove the channel's history complete: reload its state; the messages it still retains follow. */
  on(event: 'reset', fn: (channel: string, envelope: Envelope) => void): () => void
  /** The channel was deleted on the server; its handlers are removed. */
  on(event: 'deleted', fn: (channel: string, envelope: Envelope) => void): () => void
  /** A connection attempt failed or the server refused a request; the client goes on reconnecting. */
  on(event: 'error', fn: (error: CometError) => void): () => void
  off(event: string, fn: (...args: any[]) => void): void

  /** Posts `data` to the server's backend over the WebSocket; resolves with the backend's reply (comet.reply), rejects with its comet.error or when no WebSocket is open. */
  send<R = any>(data: unknown): Promise<R>

  /** Closes the connection for good and stops reconnecting. */
  close(): void
}
