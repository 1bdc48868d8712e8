package httpapi

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// PublishPolicy says who may publish, read channel info and delete
// channels (SPEC §5).
type PublishPolicy struct {
	// From lists the networks publishers may connect from.
	From []netip.Prefix
	// FromUnix lets publishers in over a unix socket: such a peer has no
	// address, and only processes on this machine can reach the socket.
	FromUnix bool
	// Key, when set, must be presented as `Authorization: Bearer <key>`.
	Key string
}

// Counters are the API's running totals, read by the metrics.
type Counters struct {
	PublishDenied   atomic.Uint64
	SubscribeDenied atomic.Uint64
}

// authorizePublisher refuses a publisher that is not from an allowed network
// or does not hold the key. Both refusals are 403 and alike, so a caller
// cannot tell which check it failed.
func (a *API) authorizePublisher(r *http.Request) *Error {
	ip := a.clientIP(r)
	allowed := !ip.IsValid() && a.Publish.FromUnix
	for _, p := range a.Publish.From {
		if p.Contains(ip) {
			allowed = true
			break
		}
	}
	if allowed && a.Publish.Key != "" {
		allowed = keyMatches(r.Header.Get("Authorization"), a.Publish.Key)
	}
	if allowed {
		return nil
	}
	if a.Counters != nil {
		a.Counters.PublishDenied.Add(1)
	}
	return errorf(http.StatusForbidden, "publishing is not allowed from this client (publish_from, publish_key)")
}

// keyMatches compares a bearer token with the key in constant time, so the
// time taken does not tell how much of a guess was right.
func keyMatches(authorization, key string) bool {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(key)) == 1
}
