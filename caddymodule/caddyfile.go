package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("comet", parseCaddyfile)
	// Before encode, so held streams are never compressed into buffers and
	// no global `order` line is needed.
	httpcaddyfile.RegisterDirectiveOrder("comet", httpcaddyfile.Before, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	comet [<name>] {
//	    prefix             <path>
//	    store              memory | redis <url>
//	    buffer             [<pattern>] <count> <age>
//	    longpoll_timeout   <duration>
//	    heartbeat          <duration>
//	    write_timeout      <duration>
//	    sse_retry          <duration>
//	    stream_max_bytes   <size>
//	    stream_close_delay <duration>
//	    queue_size         <count>
//	    queue_bytes        <size>
//	    max_body_size      <size>
//	    max_channels       <count>
//	    publish_from       <cidr...>
//	    publish_key        <secret>
//	    public             <pattern...>
//	    token_key          <secret>
//	    token_cookie       <name>
//	    authorize          <url>
//	    authorize_cache    <duration>
//	    max_subscribers_per_channel <count>
//	    max_hub_channels   <count>
//	    max_connections_per_ip <count>
//	    direct_delivery    on | off
//	    allowed_origins    <origin...>
//	    backend            <url>
//	    backend_timeout    <duration>
//	    backend_max_in_flight <count>
//	}
//
// `buffer` without a pattern sets the default retention; with one, it
// overrides it for matching channels (first match wins) and may be repeated.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		h.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		option := d.Val()
		var err error
		switch option {
		case "prefix":
			err = oneArg(d, func(v string) error { h.Prefix = v; return nil })
		case "store":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == storeMemory:
				h.Store = storeMemory
			case len(args) == 2 && args[0] == storeRedis:
				h.Store, h.StoreURL = storeRedis, args[1]
			default:
				return d.Errf("store: want `memory` or `redis <url>`")
			}
		case "buffer":
			err = h.parseBuffer(d)
		case "longpoll_timeout":
			err = oneArg(d, durationInto(&h.LongPollTimeout))
		case "heartbeat":
			err = oneArg(d, durationInto(&h.Heartbeat))
		case "write_timeout":
			err = oneArg(d, durationInto(&h.WriteTimeout))
		case "sse_retry":
			err = oneArg(d, durationInto(&h.SSERetry))
		case "stream_close_delay":
			err = oneArg(d, func(v string) error {
				var delay caddy.Duration
				if err := durationInto(&delay)(v); err != nil {
					return err
				}
				h.StreamCloseDelay = &delay
				return nil
			})
		case "stream_max_bytes":
			err = oneArg(d, sizeInto(&h.StreamMaxBytes))
		case "max_body_size":
			err = oneArg(d, sizeInto(&h.MaxBodySize))
		case "queue_size":
			err = oneArg(d, intInto(&h.QueueSize))
		case "queue_bytes":
			err = oneArg(d, sizeInto(&h.QueueBytes))
		case "max_channels":
			err = oneArg(d, intInto(&h.MaxChannelsPerSubscription))
		case "publish_from":
			h.PublishFrom = append(h.PublishFrom, d.RemainingArgs()...)
			if len(h.PublishFrom) == 0 {
				return d.ArgErr()
			}
		case "public":
			h.Public = append(h.Public, d.RemainingArgs()...)
			if len(h.Public) == 0 {
				return d.ArgErr()
			}
		case "token_key":
			err = oneArg(d, func(v string) error { h.TokenKey = v; return nil })
		case "token_cookie":
			err = oneArg(d, func(v string) error { h.TokenCookie = v; return nil })
		case "authorize":
			err = oneArg(d, func(v string) error { h.Authorize = v; return nil })
		case "authorize_cache":
			err = oneArg(d, durationInto(&h.AuthorizeCache))
		case "max_subscribers_per_channel":
			err = oneArg(d, intInto(&h.MaxSubscribersPerChannel))
		case "max_hub_channels":
			err = oneArg(d, intInto(&h.MaxHubChannels))
		case "max_connections_per_ip":
			err = oneArg(d, intInto(&h.MaxConnectionsPerIP))
		case "direct_delivery":
			err = oneArg(d, func(v string) error {
				on, err := strconv.ParseBool(v)
				if v == "on" || v == "off" {
					on, err = v == "on", nil
				}
				h.DirectDelivery = &on
				return err
			})
		case "allowed_origins":
			h.AllowedOrigins = append(h.AllowedOrigins, d.RemainingArgs()...)
			if len(h.AllowedOrigins) == 0 {
				return d.ArgErr()
			}
		case "backend":
			err = oneArg(d, func(v string) error { h.Backend = v; return nil })
		case "backend_timeout":
			err = oneArg(d, durationInto(&h.BackendTimeout))
		case "backend_max_in_flight":
			err = oneArg(d, intInto(&h.BackendMaxInFlight))
		case "publish_key":
			err = oneArg(d, func(v string) error { h.PublishKey = v; return nil })
		default:
			return d.Errf("unrecognized comet option %q", option)
		}
		if err != nil {
			return d.Errf("%s: %v", option, err)
		}
	}
	return nil
}

// parseBuffer reads `buffer [<pattern>] <count> <age>`.
func (h *Handler) parseBuffer(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	var pattern string
	switch len(args) {
	case 2:
	case 3:
		pattern, args = args[0], args[1:]
	default:
		return d.ArgErr()
	}
	count, err := strconv.Atoi(args[0])
	if err != nil {
		return d.Errf("buffer count %q is not a whole number", args[0])
	}
	age, err := caddy.ParseDuration(args[1])
	if err != nil {
		return d.Errf("buffer age %q: %v", args[1], err)
	}
	r := Retention{Count: count, Age: caddy.Duration(age)}
	if pattern == "" {
		h.Buffer = &r
		return nil
	}
	h.ChannelBuffers = append(h.ChannelBuffers, PatternRetention{Pattern: pattern, Retention: r})
	return nil
}

func oneArg(d *caddyfile.Dispenser, set func(string) error) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	value := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return set(value)
}

func durationInto(field *caddy.Duration) func(string) error {
	return func(v string) error {
		dur, err := caddy.ParseDuration(v)
		if err != nil {
			return err
		}
		*field = caddy.Duration(dur)
		return nil
	}
}

func sizeInto(field *int64) func(string) error {
	return func(v string) error {
		n, err := humanize.ParseBytes(v)
		if err != nil {
			return err
		}
		*field = int64(n)
		return nil
	}
}

func intInto(field *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*field = n
		return nil
	}
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
