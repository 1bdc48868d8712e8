package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/internal/urlquery"
	"github.com/cometbox/cometbox/caddymodule/message"
)

// Policy combines the three ways in (SPEC §6). With neither a token key nor
// an authorizer every channel is open; with either, a channel is open when
// it matches a public pattern, a valid token grants it, or the app allows
// it.
type Policy struct {
	Public []message.Pattern
	// TokenKey verifies HS256 subscribe tokens; nil disables tokens.
	TokenKey []byte
	// TokenCookie names the cookie a token may come in.
	TokenCookie string
	// Leeway bounds the clock skew tolerated on exp and nbf.
	Leeway     time.Duration
	Authorizer *Authorizer
	Now        func() time.Time
}

// Denied is a refused subscription: a status for the client and why.
type Denied struct {
	Status int
	Reason string
}

func (d *Denied) Error() string { return d.Reason }

// HTTPStatus is the status the client is answered with.
func (d *Denied) HTTPStatus() int { return d.Status }

// Protected reports whether any channel needs more than being asked for.
func (p *Policy) Protected() bool { return len(p.TokenKey) > 0 || p.Authorizer != nil }

// Check decides a subscribe request for channels. It returns when the
// permission ends (zero: never), or a *Denied.
func (p *Policy) Check(ctx context.Context, r *http.Request, channels []string) (time.Time, error) {
	if p == nil || !p.Protected() {
		return time.Time{}, nil
	}
	claims, tokenErr := p.token(r)
	var until time.Time
	for _, ch := range channels {
		expires, err := p.checkChannel(ctx, r, ch, claims, tokenErr)
		if err != nil {
			return time.Time{}, err
		}
		if !expires.IsZero() && (until.IsZero() || expires.Before(until)) {
			until = expires
		}
	}
	return until, nil
}

func (p *Policy) checkChannel(ctx context.Context, r *http.Request, ch string, claims *Claims, tokenErr error) (time.Time, error) {
	for _, pat := range p.Public {
		if pat.Match(ch) {
			return time.Time{}, nil
		}
	}
	if claims != nil && claims.Allows(ch) {
		return claims.Expires, nil
	}
	if p.Authorizer != nil {
		return p.Authorizer.Ask(ctx, r, ch)
	}
	if tokenErr != nil {
		return time.Time{}, &Denied{Status: http.StatusUnauthorized, Reason: tokenErr.Error()}
	}
	if claims != nil {
		return time.Time{}, &Denied{Status: http.StatusForbidden, Reason: fmt.Sprintf("the token does not grant channel %q", ch)}
	}
	return time.Time{}, &Denied{Status: http.StatusUnauthorized, Reason: fmt.Sprintf("channel %q needs a subscribe token", ch)}
}

// token finds and verifies the request's token, from Authorization: Bearer,
// ?token= or the token cookie, in that order.
func (p *Policy) token(r *http.Request) (*Claims, error) {
	if len(p.TokenKey) == 0 {
		return nil, nil
	}
	text := ""
	if scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		text = strings.TrimSpace(rest)
	}
	if text == "" {
		text = urlquery.Get(r.URL.RawQuery, "token")
	}
	if text == "" && p.TokenCookie != "" {
		if c, err := r.Cookie(p.TokenCookie); err == nil {
			text = c.Value
		}
	}
	if text == "" {
		return nil, nil
	}
	claims, err := ParseToken(text, p.TokenKey, p.Now(), p.Leeway)
	if err != nil {
		return nil, err
	}
	return &claims, nil
}
