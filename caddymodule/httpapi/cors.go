package httpapi

import (
	"net/http"

	"github.com/cometbox/cometbox/caddymodule/transport"
)

// CORS lets pages of other origins subscribe (allowed_origins). Credentials
// (cookies, for `authorize`) are only allowed for origins named one by one:
// with "*" any site could read a user's private channels.
type CORS struct {
	Origins []string
}

// apply sets the CORS answer headers for a subscribe request; same-origin
// and non-browser requests need no headers.
func (c *CORS) apply(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	switch listed, wildcard := transport.OriginListed(origin, c.Origins); {
	case wildcard:
		h.Set("Access-Control-Allow-Origin", "*")
	case listed:
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers OPTIONS before a cross-origin subscribe (Fetch §3.2.2):
// GET with the headers a subscriber sends.
func (c *CORS) preflight(w http.ResponseWriter, r *http.Request) {
	c.apply(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID, Cache-Control")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
