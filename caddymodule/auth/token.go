// Package auth decides who may subscribe to which channels (SPEC §6):
// channels named public, an HS256 token minted by the app, or the app's own
// answer to a subrequest. It is plain net/http; the Caddy module configures
// it.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// MaxTokenLen bounds a token, in bytes, before any decoding.
const MaxTokenLen = 8 << 10

// Claims are what a subscribe token grants.
type Claims struct {
	// Channels are patterns of the channels the holder may subscribe to.
	Channels []message.Pattern
	// Expires ends the grant; subscriptions it admitted end then too.
	Expires time.Time
}

// Allows reports whether the claims cover a channel.
func (c Claims) Allows(channel string) bool {
	for _, p := range c.Channels {
		if p.Match(channel) {
			return true
		}
	}
	return false
}

// Errors of ParseToken. All of them mean 401 to the client.
var (
	ErrTokenMalformed = errors.New("token is not a JSON Web Token (header.payload.signature)")
	ErrTokenAlgorithm = errors.New("token algorithm must be HS256")
	ErrTokenSignature = errors.New("token signature does not match")
	ErrTokenExpired   = errors.New("token has expired")
	ErrTokenNotYet    = errors.New("token is not valid yet")
	ErrTokenClaims    = errors.New("token claims must hold channels (a list of patterns) and exp (seconds)")
)

// ParseToken verifies an HS256 JSON Web Token (RFC 7519) and returns its
// claims. The algorithm is pinned: a token naming any other, `none`
// included, is refused before its signature is looked at (RFC 8725 §3.1).
// exp is required; exp and nbf are checked with leeway for clock skew.
func ParseToken(token string, key []byte, now time.Time, leeway time.Duration) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, ErrTokenMalformed
	}
	headerText, rest, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrTokenMalformed
	}
	payloadText, sigText, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigText, ".") {
		return Claims{}, ErrTokenMalformed
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := decodeSegment(headerText, &header); err != nil {
		return Claims{}, ErrTokenMalformed
	}
	if header.Alg != "HS256" {
		return Claims{}, ErrTokenAlgorithm
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil {
		return Claims{}, ErrTokenMalformed
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(token[:len(headerText)+1+len(payloadText)]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return Claims{}, ErrTokenSignature
	}
	var payload struct {
		Channels []string `json:"channels"`
		Exp      *float64 `json:"exp"`
		Nbf      *float64 `json:"nbf"`
	}
	if err := decodeSegment(payloadText, &payload); err != nil || payload.Exp == nil || len(payload.Channels) == 0 {
		return Claims{}, ErrTokenClaims
	}
	expires := time.Unix(int64(*payload.Exp), 0)
	if !now.Before(expires.Add(leeway)) {
		return Claims{}, ErrTokenExpired
	}
	if payload.Nbf != nil && now.Add(leeway).Before(time.Unix(int64(*payload.Nbf), 0)) {
		return Claims{}, ErrTokenNotYet
	}
	claims := Claims{Expires: expires.Add(leeway)}
	for _, p := range payload.Channels {
		if p == "" || len(p) > message.MaxChannelLen {
			return Claims{}, fmt.Errorf("%w: a channel pattern is empty or too long", ErrTokenClaims)
		}
		claims.Channels = append(claims.Channels, message.Pattern(p))
	}
	return claims, nil
}

func decodeSegment(text string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
