package naivefanout

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("naive_fanout", parseCaddyfile)
	httpcaddyfile.RegisterHandlerDirective("held_floor", parseHeldFloor)
	// Before respond, so a site block needs no global `order` line.
	httpcaddyfile.RegisterDirectiveOrder("naive_fanout", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("held_floor", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

func parseHeldFloor(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	return new(HeldFloor), takesNoOptions(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return takesNoOptions(d)
}

// takesNoOptions reads a directive that has neither arguments nor a block:
//
//	naive_fanout
//	held_floor
func takesNoOptions(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("%s takes no options, got %q", name, d.Val())
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
