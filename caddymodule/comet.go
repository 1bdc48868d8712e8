// Package caddymodule registers the comet HTTP handler with Caddy: it
// answers requests under a prefix (default /comet) with held subscriber
// connections and a local publish API, and passes every other request to
// the next handler untouched. This package is only Caddy glue; the hub,
// history, transports and stores live in its subpackages.
package caddymodule

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/cometbox/cometbox/caddymodule/auth"
	"github.com/cometbox/cometbox/caddymodule/httpapi"
	"github.com/cometbox/cometbox/caddymodule/hub"
	"github.com/cometbox/cometbox/caddymodule/message"
	"github.com/cometbox/cometbox/caddymodule/transport"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the comet handler. One hub per name is kept in a
// caddy.UsagePool, so a config reload keeps channels, history and
// connected subscribers.
type Handler struct {
	// Name of the hub. Handlers with the same name, in one config or across
	// reloads, share channels and history. Default: "default".
	Name string `json:"name,omitempty"`

	// Prefix is the path under which the handler answers; every other
	// request goes to the next handler unchanged. Default: "/comet".
	Prefix string `json:"prefix,omitempty"`

	// Store is where history lives: "memory" (embedded, one process) or
	// "redis" (shared by every Caddy node on the same Redis, at StoreURL).
	// Default: "memory".
	Store string `json:"store,omitempty"`

	// StoreURL locates the Redis server for the redis store:
	// redis://[user:password@]host:port/db, or rediss:// for TLS.
	StoreURL string `json:"store_url,omitempty"`

	// Buffer is the retention of every channel without a more specific
	// rule. Default: 100 messages, 1h.
	Buffer *Retention `json:"buffer,omitempty"`

	// ChannelBuffers override Buffer for channels matching a pattern; the
	// first matching rule wins. `*` in a pattern matches any run of
	// characters.
	ChannelBuffers []PatternRetention `json:"channel_buffers,omitempty"`

	// LongPollTimeout is the longest a long-poll request is held when
	// nothing is newer than its cursor. Default: 30s.
	LongPollTimeout caddy.Duration `json:"longpoll_timeout,omitempty"`

	// Heartbeat is the interval between SSE comments and NDJSON empty lines
	// on an otherwise quiet stream, so proxies and clients know it is
	// alive. Default: 25s.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`

	// WriteTimeout bounds one write to a subscriber (a batch of frames on a
	// stream, one WebSocket frame): a client that takes nothing for this
	// long is cut and resumes by cursor, so a stalled one cannot hold its
	// connection's resources. Default: 15s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// SSERetry is the reconnection delay told to SSE clients in the
	// `retry:` field. Default: 2s.
	SSERetry caddy.Duration `json:"sse_retry,omitempty"`

	// StreamMaxBytes ends an NDJSON stream after this many bytes, with a
	// comet.reconnect notice, so that an XHR's responseText cannot grow
	// without bound. Default: 1048576 (1 MiB).
	StreamMaxBytes int64 `json:"stream_max_bytes,omitempty"`

	// StreamCloseDelay is how long held connections stay open after this
	// config is unloaded (reload or shutdown); each connection adds a
	// random jitter of up to the same again, then ends with a
	// comet.reconnect notice. Clients resume by cursor. Default: 2s.
	StreamCloseDelay *caddy.Duration `json:"stream_close_delay,omitempty"`

	// QueueSize is how many messages may wait for one subscriber before it
	// is disconnected as a slow consumer (it resumes by cursor).
	// Default: 256.
	QueueSize int `json:"queue_size,omitempty"`

	// QueueBytes bounds what the messages waiting for one subscriber may
	// hold, in bytes (a single message may exceed it); past it the
	// subscriber is cut as a slow consumer. Default: 4194304 (4 MiB).
	QueueBytes int64 `json:"queue_bytes,omitempty"`

	// MaxBodySize bounds a publish request body, in bytes; larger bodies
	// are refused with 413. Default: 1048576 (1 MiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// MaxChannelsPerSubscription bounds how many channels one subscribe
	// request may name. Default: 32.
	MaxChannelsPerSubscription int `json:"max_channels_per_subscription,omitempty"`

	// PublishFrom lists the client networks (CIDR or single addresses) that
	// may publish, read channel info and delete channels; the word `unix`
	// admits peers on a unix socket the site listens on. The client address
	// honours the server's trusted_proxies. Default: loopback and unix
	// sockets (127.0.0.0/8, ::1, unix).
	PublishFrom []string `json:"publish_from,omitempty"`

	// PublishKey, when set, must also be presented by publishers as
	// `Authorization: Bearer <key>`. Default: none.
	PublishKey string `json:"publish_key,omitempty"`

	// Public lists channel patterns anyone may subscribe to when TokenKey
	// or Authorize protect the others. `*` matches any run of characters.
	Public []string `json:"public,omitempty"`

	// TokenKey, when set, protects channels: a subscriber needs an HS256
	// JSON Web Token signed with this key whose `channels` claim (patterns)
	// covers the channel and whose `exp` has not passed. It is read from
	// `Authorization: Bearer`, `?token=` or the TokenCookie cookie.
	// Default: none.
	TokenKey string `json:"token_key,omitempty"`

	// TokenCookie names the cookie a subscribe token may come in.
	// Default: "comet_token".
	TokenCookie string `json:"token_cookie,omitempty"`

	// Authorize, when set, protects channels: the URL is asked with a GET
	// carrying the subscriber's cookies and Authorization and the channel
	// (`?channel=` and a Comet-Channel header); 2xx allows, any other status
	// is passed back to the subscriber. A `Comet-Expires: <unix seconds>`
	// answer header ends the subscription then. Default: none.
	Authorize string `json:"authorize,omitempty"`

	// AuthorizeCache is how long an answer of Authorize is reused for the
	// same session (cookies and Authorization) and channel. Default: 30s.
	AuthorizeCache caddy.Duration `json:"authorize_cache,omitempty"`

	// MaxSubscribersPerChannel bounds one channel's subscribers; more are
	// refused with 429. Default: 50000.
	MaxSubscribersPerChannel int `json:"max_subscribers_per_channel,omitempty"`

	// MaxHubChannels bounds the channels the hub holds, with history or
	// with subscribers; publishing to one more is refused with 507,
	// subscribing with 429. Default: 100000.
	MaxHubChannels int `json:"max_hub_channels,omitempty"`

	// MaxConnectionsPerIP bounds the subscriber connections held for one
	// client address; more are refused with 429. Default: 1000.
	MaxConnectionsPerIP int `json:"max_connections_per_ip,omitempty"`

	// DirectDelivery takes HTTP/1.1 SSE, NDJSON and WebSocket subscribers
	// on plain sockets off their request goroutines: the connection is
	// hijacked and a few writer goroutines send every message's shared
	// bytes to all of them, so an idle subscriber costs a few kilobytes at
	// most instead of goroutines (a WebSocket's frames are read by a
	// goroutine that lives while they arrive). No WebSocket extension is
	// agreed there. HTTP/2, HTTP/3 and TLS subscribers stay on the handler
	// path. Default: true (on Linux).
	DirectDelivery *bool `json:"direct_delivery,omitempty"`

	// AllowedOrigins lists the origins (scheme://host[:port]), besides the
	// page's own, whose pages may subscribe (CORS, with credentials) and
	// open a WebSocket; "*" allows any origin, without credentials. A
	// request without Origin (not a browser) is always allowed.
	// Default: none (same-origin only).
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// Backend is the URL WebSocket client messages (`op: message`) are
	// POSTed to, with the client's cookies, Authorization and Origin and a
	// Comet-Connection-Id header; a 200 answer goes back to that client as
	// comet.reply. Default: none (client messages are refused).
	Backend string `json:"backend,omitempty"`

	// BackendTimeout bounds one request to the backend. Default: 10s.
	BackendTimeout caddy.Duration `json:"backend_timeout,omitempty"`

	// BackendMaxInFlight bounds the backend requests one WebSocket
	// connection may have waiting; more are refused with a 429
	// comet.error. Default: 4.
	BackendMaxInFlight int `json:"backend_max_in_flight,omitempty"`

	ctx     caddy.Context
	logger  *zap.Logger
	hub     *hub.Hub
	api     *httpapi.API
	unload  chan struct{}
	stopped chan struct{}
}

// Retention is how much history a channel keeps.
type Retention struct {
	// Count is the most messages kept. Default: 100.
	Count int `json:"count,omitempty"`
	// Age is the longest a message is kept. Default: 1h.
	Age caddy.Duration `json:"age,omitempty"`
}

// PatternRetention is the retention of channels matching a pattern.
type PatternRetention struct {
	// Pattern is a channel name where `*` matches any run of characters,
	// e.g. `user.*`.
	Pattern string `json:"pattern"`
	Retention
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.comet",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Store kinds.
const (
	storeMemory = "memory"
	storeRedis  = "redis"
)

// Defaults.
const (
	defaultName            = "default"
	defaultPrefix          = "/comet"
	defaultBufferCount     = 100
	defaultBufferAge       = time.Hour
	defaultLongPollTimeout = 30 * time.Second
	defaultHeartbeat       = 25 * time.Second
	defaultSSERetry        = 2 * time.Second
	defaultWriteTimeout    = 15 * time.Second
	defaultStreamMaxBytes  = 1 << 20
	defaultCloseDelay      = 2 * time.Second
	defaultQueueSize       = 256
	defaultQueueBytes      = 4 << 20
	defaultMaxBodySize     = 1 << 20
	defaultMaxChannels     = 32
	defaultBackendTimeout  = 10 * time.Second
	defaultBackendInFlight = 4
	defaultTokenCookie     = "comet_token"
	defaultAuthorizeCache  = 30 * time.Second
	defaultMaxSubscribers  = 50_000
	defaultMaxHubChannels  = 100_000
	defaultMaxConnsPerIP   = 1000
	// tokenLeeway bounds the clock skew tolerated between the app that
	// mints tokens and this server.
	tokenLeeway = 30 * time.Second
	// authorizeTimeout bounds one question to the app.
	authorizeTimeout = 5 * time.Second
)

// Provision fills in defaults, takes the hub from the pool (or makes it) and
// applies this config's settings to it.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	h.fillDefaults()

	publishFrom, fromUnix, err := parsePublishFrom(h.PublishFrom)
	if err != nil {
		return fmt.Errorf("publish_from: %w", err)
	}
	rules, err := h.retentionRules()
	if err != nil {
		return err
	}

	value, _, err := hubs.LoadOrNew(h.Name, func() (caddy.Destructor, error) {
		return h.newPooledHub(ctx, rules)
	})
	if err != nil {
		return fmt.Errorf("comet hub %q: %w", h.Name, err)
	}
	pooled := value.(*pooledHub)
	if pooled.store != h.storeIdentity() {
		hubs.Delete(h.Name)
		return fmt.Errorf("comet hub %q already runs on store %s; give this one another name", h.Name, pooled.store)
	}
	h.hub = pooled.hub
	// Settings of the new config apply to the hub that survived the reload.
	h.hub.SetRetention(rules)
	h.hub.SetQueueLimit(h.QueueSize, int(h.QueueBytes))
	h.hub.SetLimits(hub.Limits{SubscribersPerChannel: h.MaxSubscribersPerChannel, Channels: h.MaxHubChannels})
	pooled.connections.SetMax(h.MaxConnectionsPerIP)

	h.unload = make(chan struct{})
	h.stopped = make(chan struct{})
	go h.watchUnload()

	h.api = &httpapi.API{
		Hub:    h.hub,
		Prefix: h.Prefix,
		Transport: transport.Options{
			LongPollTimeout: time.Duration(h.LongPollTimeout),
			Heartbeat:       time.Duration(h.Heartbeat),
			WriteTimeout:    time.Duration(h.WriteTimeout),
			SSERetry:        time.Duration(h.SSERetry),
			StreamMaxBytes:  h.StreamMaxBytes,
			CloseDelay:      time.Duration(*h.StreamCloseDelay),
			Unload:          h.unload,
			WebSocket: transport.WebSocketOptions{
				AllowedOrigins: h.AllowedOrigins,
				MaxMessageSize: h.MaxBodySize,
				MaxChannels:    h.MaxChannelsPerSubscription,
				Backend:        h.forwarder(),
			},
			ClientAddr: func(r *http.Request) string { return clientIP(r).String() },
		},
		Publish:     httpapi.PublishPolicy{From: publishFrom, FromUnix: fromUnix, Key: h.PublishKey},
		MaxBodySize: h.MaxBodySize,
		MaxChannels: h.MaxChannelsPerSubscription,
		ClientIP:    clientIP,
		Logger:      h.logger,
		Counters:    &pooled.counters,
		Auth:        h.authPolicy(),
		CORS:        httpapi.CORS{Origins: h.AllowedOrigins},
		Connections: &pooled.connections,
	}
	h.api.Transport.WebSocket.Authorize = h.api.AuthorizeRuntime
	if h.DirectDelivery == nil || *h.DirectDelivery {
		h.api.Transport.Direct = pooled.direct
	}
	registerMetrics(ctx.GetMetricsRegistry())
	return nil
}

// authPolicy builds the subscriber authorization of SPEC §6.
func (h *Handler) authPolicy() *auth.Policy {
	p := &auth.Policy{TokenCookie: h.TokenCookie, Leeway: tokenLeeway, Now: time.Now}
	for _, pattern := range h.Public {
		p.Public = append(p.Public, message.Pattern(pattern))
	}
	if h.TokenKey != "" {
		p.TokenKey = []byte(h.TokenKey)
	}
	if h.Authorize != "" {
		p.Authorizer = &auth.Authorizer{
			URL:        h.Authorize,
			Client:     &http.Client{Timeout: authorizeTimeout},
			CacheTTL:   time.Duration(h.AuthorizeCache),
			MaxEntries: authorizeCacheEntries,
			Now:        time.Now,
		}
	}
	return p
}

// authorizeCacheEntries bounds the authorize answers kept.
const authorizeCacheEntries = 100_000

// forwarder sends WebSocket client messages to the backend, when one is
// configured.
func (h *Handler) forwarder() *transport.Forwarder {
	if h.Backend == "" {
		return nil
	}
	timeout := time.Duration(h.BackendTimeout)
	return &transport.Forwarder{
		URL:          h.Backend,
		Timeout:      timeout,
		MaxInFlight:  h.BackendMaxInFlight,
		MaxReplySize: h.MaxBodySize,
		Client:       &http.Client{Timeout: timeout},
	}
}

func (h *Handler) fillDefaults() {
	if h.Name == "" {
		h.Name = defaultName
	}
	if h.Prefix == "" {
		h.Prefix = defaultPrefix
	}
	h.Prefix = strings.TrimSuffix(h.Prefix, "/")
	if h.Store == "" {
		h.Store = storeMemory
	}
	if h.Buffer == nil {
		h.Buffer = &Retention{}
	}
	if h.Buffer.Count == 0 {
		h.Buffer.Count = defaultBufferCount
	}
	if h.Buffer.Age == 0 {
		h.Buffer.Age = caddy.Duration(defaultBufferAge)
	}
	for i := range h.ChannelBuffers {
		if h.ChannelBuffers[i].Count == 0 {
			h.ChannelBuffers[i].Count = h.Buffer.Count
		}
		if h.ChannelBuffers[i].Age == 0 {
			h.ChannelBuffers[i].Age = h.Buffer.Age
		}
	}
	setDefault(&h.LongPollTimeout, caddy.Duration(defaultLongPollTimeout))
	setDefault(&h.Heartbeat, caddy.Duration(defaultHeartbeat))
	setDefault(&h.SSERetry, caddy.Duration(defaultSSERetry))
	setDefault(&h.WriteTimeout, caddy.Duration(defaultWriteTimeout))
	setDefault(&h.StreamMaxBytes, defaultStreamMaxBytes)
	if h.StreamCloseDelay == nil {
		d := caddy.Duration(defaultCloseDelay)
		h.StreamCloseDelay = &d
	}
	setDefault(&h.QueueSize, defaultQueueSize)
	setDefault(&h.QueueBytes, defaultQueueBytes)
	setDefault(&h.MaxBodySize, defaultMaxBodySize)
	setDefault(&h.MaxChannelsPerSubscription, defaultMaxChannels)
	setDefault(&h.TokenCookie, defaultTokenCookie)
	setDefault(&h.AuthorizeCache, caddy.Duration(defaultAuthorizeCache))
	setDefault(&h.MaxSubscribersPerChannel, defaultMaxSubscribers)
	setDefault(&h.MaxHubChannels, defaultMaxHubChannels)
	setDefault(&h.MaxConnectionsPerIP, defaultMaxConnsPerIP)
	setDefault(&h.BackendTimeout, caddy.Duration(defaultBackendTimeout))
	setDefault(&h.BackendMaxInFlight, defaultBackendInFlight)
	if len(h.PublishFrom) == 0 {
		h.PublishFrom = []string{"127.0.0.0/8", "::1/128", "unix"}
	}
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// Validate checks the provisioned config. It has no side effects.
func (h *Handler) Validate() error {
	if !strings.HasPrefix(h.Prefix, "/") {
		return fmt.Errorf("prefix %q must start with /", h.Prefix)
	}
	switch h.Store {
	case storeMemory:
	case storeRedis:
		if h.StoreURL == "" {
			return fmt.Errorf("store redis needs a URL: store redis redis://127.0.0.1:6379/0")
		}
	default:
		return fmt.Errorf("store %q is not known; use memory or redis", h.Store)
	}
	if h.Buffer.Count < 0 || h.Buffer.Age < 0 {
		return fmt.Errorf("buffer must not be negative")
	}
	for _, rule := range h.ChannelBuffers {
		if rule.Pattern == "" || rule.Count < 0 || rule.Age < 0 {
			return fmt.Errorf("buffer %q: a pattern and non-negative count and age are required", rule.Pattern)
		}
	}
	if h.LongPollTimeout < 0 || h.Heartbeat <= 0 || h.WriteTimeout <= 0 || h.SSERetry < 0 || *h.StreamCloseDelay < 0 {
		return fmt.Errorf("durations must not be negative, and heartbeat and write_timeout must be positive")
	}
	if h.Backend != "" {
		if u, err := url.Parse(h.Backend); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("backend %q must be an absolute http or https URL", h.Backend)
		}
	}
	if h.Authorize != "" {
		if u, err := url.Parse(h.Authorize); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("authorize %q must be an absolute http or https URL", h.Authorize)
		}
	}
	if len(h.Public) > 0 && h.TokenKey == "" && h.Authorize == "" {
		return fmt.Errorf("public only means something with token_key or authorize: without them every channel is open")
	}
	if h.MaxSubscribersPerChannel < 0 || h.MaxHubChannels < 0 || h.MaxConnectionsPerIP < 0 || h.AuthorizeCache < 0 {
		return fmt.Errorf("limits must not be negative")
	}
	if h.BackendTimeout < 0 || h.BackendMaxInFlight < 0 {
		return fmt.Errorf("backend_timeout and backend_max_in_flight must not be negative")
	}
	if h.QueueSize < 0 || h.QueueBytes < 0 || h.MaxBodySize < 0 || h.MaxChannelsPerSubscription < 0 || h.StreamMaxBytes < 0 {
		return fmt.Errorf("sizes and limits must not be negative")
	}
	return nil
}

// ServeHTTP answers requests under the prefix and passes everything else
// on exactly as it came: no header touched, no body read.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path != h.Prefix && !strings.HasPrefix(r.URL.Path, h.Prefix+"/") {
		return next.ServeHTTP(w, r)
	}
	if err := h.api.ServeHTTP(w, r); err != nil {
		h.logEarlyEnd(r, err)
	}
	return nil
}

// logEarlyEnd notes a response that failed after its first byte. It is a
// function of its own so that its log fields do not enlarge the frame
// under which every HTTP/2 stream is held (see transport.Handoff).
func (h *Handler) logEarlyEnd(r *http.Request, err error) {
	h.logger.Debug("comet response ended early", zap.String("path", r.URL.Path), zap.Error(err))
}

// watchUnload closes h.unload when this config is unloaded, so that held
// connections end after stream_close_delay. Caddy cancels the context only
// after the servers' graceful shutdown, and on process exit that shutdown
// waits for these very connections, so exit is watched for as well.
func (h *Handler) watchUnload() {
	defer close(h.stopped)
	ticker := time.NewTicker(exitPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-h.ctx.Done():
			close(h.unload)
			return
		case <-ticker.C:
			if caddy.Exiting() {
				close(h.unload)
				<-h.ctx.Done()
				return
			}
		}
	}
}

// exitPollInterval is how often the handler checks whether Caddy is exiting.
const exitPollInterval = 250 * time.Millisecond

// Cleanup releases this config's hold on the hub; the hub closes when no
// config holds it any more. It copes with a half-provisioned handler.
func (h *Handler) Cleanup() error {
	if h.stopped != nil {
		<-h.stopped // the context is done by now; the watcher has returned
	}
	if h.hub == nil {
		return nil
	}
	if _, err := hubs.Delete(h.Name); err != nil {
		return fmt.Errorf("release comet hub %q: %w", h.Name, err)
	}
	return nil
}

// clientIP is the client address as Caddy determined it, honouring the
// server's trusted_proxies.
func clientIP(r *http.Request) netip.Addr {
	if s, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		if ip, err := netip.ParseAddr(s); err == nil {
			return ip.Unmap()
		}
	}
	return httpapi.PeerAddr(r)
}

// parsePublishFrom reads CIDRs, single addresses and the word `unix`.
func parsePublishFrom(list []string) (prefixes []netip.Prefix, unix bool, err error) {
	for _, s := range list {
		switch {
		case s == "unix":
			unix = true
		case !strings.Contains(s, "/"):
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, false, fmt.Errorf("%q is neither an address, a CIDR nor unix", s)
			}
			prefixes = append(prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		default:
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, false, fmt.Errorf("%q: %w", s, err)
			}
			prefixes = append(prefixes, p.Masked())
		}
	}
	return prefixes, unix, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
